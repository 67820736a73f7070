"""What the tests (and bench/) share; tests/conftest.py turns some of it into fixtures.

- asgi: clients of the app in this process (TestClient factory, httpx on the test's loop).
- browser: headless Chromium through chromedriver.
- drawing: pages of known words drawn with Pillow.
- environment: the variables the service reads, kept out of tests and child processes.
- fault_servers: image servers that misbehave (errors, redirect loops, endless bodies, silence).
- image_server: a real image server on 127.0.0.1, and one that holds its answer.
- label_studio: Label Studio's stock OCR template and /predict bodies as it sends them.
- label_studio_server: a stand-in Label Studio that serves task images and checks tokens.
- load: many concurrent /predict calls against the service process, measured.
- metrics: a Prometheus /metrics page as samples.
- processes: free ports, child processes in their own process group, readiness polling.
- service: the `ocr-backend` process on 127.0.0.1, started and stopped as a user would.
- settings: settings with a few changed.

Import them as `from tests.support.drawing import draw_page`; run benchmarks from the
repository root as `python -m bench.NAME` so that `tests` is importable there too.
"""
