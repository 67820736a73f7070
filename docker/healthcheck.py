"""Container health probe: exit 0 when the service's /health answers UP.

Run by the image's HEALTHCHECK and by compose.yaml, inside the container.
Standard library only: slim images have no curl. It sends the service's own
basic-auth credentials, since the service may require them on every route.
"""

import base64
import json
import os
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("PORT") or "9090"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/health")
    user = os.environ.get("BASIC_AUTH_USER")
    if user:
        password = os.environ.get("BASIC_AUTH_PASS", "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    try:
        # The URL is built here, always http://127.0.0.1: no scheme from outside.
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310
            body = json.load(response)
    except (OSError, ValueError) as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    if not isinstance(body, dict) or body.get("status") != "UP":
        print(f"unhealthy: {body}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
