"""A multi-host lab on one machine: network namespaces ("hosts") joined by veth pairs to a
bridge, addresses from 198.18.0.0/15 (reserved for network benchmarks), private services
on a broker host, workers on worker hosts, delay per link and partitions (a link set down
or a route blackholed). Everything it creates is torn down on exit, also on failure.

netns: the hosts and their links; services: PostgreSQL, Redis, RabbitMQ and Tansu on the
broker host; delay: per-link delay (tc netem where the kernel has it, else a delay proxy);
client: the API side (creates jobs, reads their rows); network: the `network` benchmark
family; faults: partition and flaky-link faults for chaos.
"""
