"""The facecast HTTP server: FastAPI app, routes, and the static web client.

    from facecast.server.app import create_app
    from facecast.server.settings import ServerSettings
    app = create_app(ServerSettings.from_env())
"""
