"""The baseline: a bare HTTP server that only parses one CSV row and predicts with XGBoost.

Same stack as the local service (uvicorn, httptools, uvloop, XGBoost with nthread=1), none of
its routing, registry, errors or metrics: ``python bare_server.py MODEL_FILE PORT``.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import uvicorn
import xgboost as xgb


def main(model_file: str, port: int) -> None:
    booster = xgb.Booster(params={"nthread": 1})
    with open(model_file, "rb") as f:
        booster.load_model(bytearray(f.read()))

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        row = np.array([[float(v) for v in body.decode().strip().split(",")]], dtype=np.float32)
        out = json.dumps(booster.inplace_predict(row, validate_features=False).tolist()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": out})

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
