"""HTTP and WebSocket routes, one small router per concern; create_app includes them."""
