"""`facecast serve --ray`: the same HTTP API as Ray Serve replicas, each session kept on its replica.

    affinity.py    session ids that name their replica; finding the session id in a request path
    router.py      the Serve request router that sends a session's requests to its replica
    deployment.py  the replica (create_app inside a Serve deployment), its options and autoscaling
    stats.py       /stats over every replica (a small named actor the replicas report to)
    launch.py      ray.init + serve.run for the command line

Importing this package does not import Ray; the modules that need it do.
"""
