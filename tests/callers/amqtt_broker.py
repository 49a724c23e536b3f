"""An amqtt broker whose logins and topic checks ask verdict's mqtt endpoints.

Usage: amqtt_broker.py --port MQTT_PORT --verdict-port PORT
Run by the test suite (tests/integration/callers.rs); the configuration below is the one
the README shows.
"""

import argparse
import asyncio

from amqtt.broker import Broker
from amqtt.contrib.http import ParamsMode, RequestMethod, ResponseMode


def config(mqtt_port: int, verdict_port: int) -> dict:
    backend = {
        "host": "127.0.0.1",
        "port": verdict_port,
        "request_method": RequestMethod.POST,
        "params_mode": ParamsMode.JSON,
        "response_mode": ResponseMode.STATUS,
    }
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{mqtt_port}"}},
        "plugins": {
            "amqtt.contrib.http.UserAuthHttpPlugin": {
                **backend,
                "user_uri": "/_resolver/mqtt/user",
            },
            "amqtt.contrib.http.TopicAuthHttpPlugin": {
                **backend,
                "topic_uri": "/_resolver/mqtt/acl",
            },
        },
    }


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
