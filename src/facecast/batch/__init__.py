"""`facecast batch jobs.csv --out DIR`: many renders, locally or as Ray tasks over a cluster.

    jobs.py    the CSV: one render per row (avatar, audio or text, options), checked up front
    render.py  one job -> DIR/<name>.mp4 (written whole or not at all)
    run.py     the runners (local, Ray), retries, resumption, the summary
    cli.py     the command
"""
