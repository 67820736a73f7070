"""The Ray head lost under a running service: it stays up, answers 503, says "degraded",
and reads again once a head answers at RAY_ADDRESS.

The service runs as a user runs it (`python -m ocr_backend`, its own process)
with RAY_ADDRESS on a real cluster on this machine: a head and one worker node.
The head is this machine's Ray node, so the service's driver sits on the head's
node, as in the report. Killing the head's processes (by PID) used to end the
service with status 1 and no log line, on the next read (Ray ends a driver whose
local node is gone); /health said nothing wrong until then.

One test, one service start: loading EasyOCR in the actors is most of its time.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.drawing import draw_page
from tests.support.image_server import ImageServer
from tests.support.label_studio import OCR_TEMPLATE
from tests.support.processes import wait_until
from tests.support.ray_cluster import RAY_ENVIRONMENT, kill, node_pids, ray_cluster, ray_pids
from tests.support.service import ServiceProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def predict(service: ServiceProcess, url: str, project: str) -> httpx.Response:
    body = {"tasks": [{"id": 1, "data": {"ocr": url}}], "label_config": OCR_TEMPLATE}
    return httpx.post(
        service.url + "/predict", json=body | {"project": project}, timeout=120, trust_env=False
    )


def health(service: ServiceProcess) -> dict:
    response = httpx.get(service.url + "/health", timeout=1.0, trust_env=False)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_head_lost_leaves_the_service_up_answering_503_until_it_is_back(tmp_path: Path):
    (tmp_path / "pages").mkdir()
    server = ImageServer(tmp_path / "pages")
    url = server.put("sign.png", draw_page(["HEAD LOST"])[0])
    try:
        with (
            ray_cluster([{"num_cpus": 1}]) as (cluster, _),
            ServiceProcess(
                RAY_ADDRESS=cluster.address, RAY_ACTORS="1", RAY_WAIT_SECONDS="3", **RAY_ENVIRONMENT
            ) as service,
        ):
            service.wait_healthy(240)
            read = predict(service, url, "1.1")
            assert read.status_code == 200, read.text
            assert "HEAD LOST" in read.text

            kill(node_pids(cluster.head_node))  # its GCS and raylet: the service's local node
            killed = time.monotonic()
            noticed = wait_until(
                "/health degraded",
                lambda: health(service)["degraded"],
                15,
                child=service.process,
                interval_s=0.1,
            )

            asked = time.monotonic()
            now = health(service)
            health_took = time.monotonic() - asked
            assert health_took < 1  # Label Studio's limit
            assert now["status"] == "UP" and now["degraded"] is True
            assert now["cluster"]["actors_up"] == 0
            assert "Ray driver process exited" in now["cluster"]["lost"]

            asked = time.monotonic()
            refused = predict(service, url, "2.1")
            predict_took = time.monotonic() - asked
            assert refused.status_code == 503, refused.text
            detail = refused.json()["detail"]
            assert f"RAY_ADDRESS={cluster.address} is lost" in detail and "retry" in detail
            assert refused.headers["Retry-After"] == "10"

            time.sleep(1)
            assert service.process.running(), service.output()
            told = [
                line for line in service.output().splitlines() if "Lost the Ray cluster" in line
            ]
            assert len(told) == 1 and f"RAY_ADDRESS={cluster.address}" in told[0], told
            up_for = time.monotonic() - killed

            # The head back at the same address (its worker is gone with it: a new one).
            port = int(cluster.address.rpartition(":")[2])
            kill(ray_pids(cluster))
            with ray_cluster([{"num_cpus": 1}], head_port=port) as (again, _):
                assert again.address == cluster.address
                back = wait_until(
                    "/health not degraded",
                    lambda: not health(service)["degraded"],
                    120,
                    child=service.process,
                    interval_s=0.2,
                )
                read = predict(service, url, "3.1")
                assert read.status_code == 200, read.text
                assert "HEAD LOST" in read.text
                assert "joined again" in service.output()
                stopped = service.stop()  # while its cluster is up: a clean stop
                assert stopped == 0, service.output()[-3000:]
            print(
                f"head killed: /health degraded after {noticed:.2f} s, answered in "
                f"{health_took * 1000:.0f} ms; /predict 503 in {predict_took * 1000:.0f} ms; "
                f"service up {up_for:.1f} s after the kill; a head back on the same address: "
                f"reading again {back:.1f} s later"
            )
    finally:
        server.close()
