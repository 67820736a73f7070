"""What the tests share: servers on 127.0.0.1, drawn pages, clients of the app, the service."""
