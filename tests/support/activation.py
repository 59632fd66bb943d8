"""SSM activations on the sandbox, and `sandbox join` through its HTTP endpoint."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

ROLE = "ecsAnywhereRole"


def create(sandbox: Any, **kwargs: Any) -> dict[str, Any]:
    request = {"IamRole": ROLE, **kwargs}
    return dict(sandbox.client("ssm").create_activation(**request))


def post_join(sandbox: Any, **fields: Any) -> tuple[int, dict[str, Any]]:
    body = {"cluster": sandbox.cluster, "region": sandbox.region, **fields}
    request = urllib.request.Request(
        sandbox.endpoint + "/residency-sandbox/join",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def join(sandbox: Any, hostname: str, created: dict[str, Any], **fields: Any) -> Any:
    return post_join(
        sandbox,
        hostname=hostname,
        activation_id=created["ActivationId"],
        activation_code=created["ActivationCode"],
        **fields,
    )
