"""The template's test harness: what the test modules and the benchmarks use
to render the template, run rendered services on real servers, drive a
Docker engine and compose stacks, and generate load.

    answers        the answers the suite renders, and the names they produce
    policy         skip on a developer machine, fail under CI
    processes      the one way to stop a child process
    servers        real PostgreSQL, Redis and S3 servers
    service        a rendered service's virtualenv, commands and processes
    template_repo  the template as a tagged git repository, and copier runs
    docker         the Docker engine and the images the stacks need
    stack          the production image and compose stack of a service
    backup         a stack's backups and restores, driven as an operator does
    load           an HTTP load generator run as a process of its own
    plugin         the pytest plugin: fixtures, figures, Hypothesis profiles
"""
