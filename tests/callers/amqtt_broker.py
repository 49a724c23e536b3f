"""An amqtt broker whose logins and topic checks ask verdict's mqtt endpoints.

Usage: amqtt_broker.py --port MQTT_PORT --verdict-port PORT
Run by the test suite (tests/integration/callers.rs); the configuration is the README's
Python block, executed as written, with the test's ports put in.
"""

import argparse
import asyncio
import re
from pathlib import Path

from amqtt.broker import Broker


def config(mqtt_port: int, verdict_port: int) -> dict:
    """The README's configuration, run as written, with this test's ports put in."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    names: dict = {}
    exec(snippet, names)
    config = names["config"]
    assert config["listeners"]["default"]["bind"] == "0.0.0.0:1883"
    config["listeners"]["default"]["bind"] = f"127.0.0.1:{mqtt_port}"
    for plugin in config["plugins"].values():
        assert plugin["port"] == 8080, plugin
        plugin["port"] = verdict_port
    return config


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--verdict-port", type=int, required=True)
    args = parser.parse_args()
    broker = Broker(config(args.port, args.verdict_port))
    await broker.start()
    print("broker started", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
