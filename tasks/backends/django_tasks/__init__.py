"""Django's own Tasks framework (`django.tasks`) as a job backend, with the database
backend and `db_worker` of django-tasks-db: `task` (the `@task` the job is enqueued as),
`backend` (publish through `.using(...).enqueue()`, purge, the worker command), and the
worker side, which only a worker process imports: `worker` (the db_worker entry).

Nothing is imported here: `python -m tasks.backends.django_tasks.worker` imports this
package before it sets Django up, and the backend needs the app registry (its models).
"""
