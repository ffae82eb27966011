"""The HTTP API (Falcon, WSGI): thin resources over the domain functions in ``backend``."""
