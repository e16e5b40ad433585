"""procrastinate (a PostgreSQL task queue) as a job backend, through its Django app
`procrastinate.contrib.django`: `backend` (defer by task name, purge, the worker
command), and the worker side, which only a worker process imports: `task` (the task
body, registered on the app) and `worker` (the worker entry).

Nothing is imported here: `python -m tasks.backends.procrastinate.worker` imports this
package before it sets Django up.
"""
