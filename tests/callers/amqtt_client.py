"""A real MQTT client (amqtt's) that logs in, subscribes and publishes, and prints what
happened as one JSON object: {"connected", "granted": [...], "received": [...]}.

Usage: amqtt_client.py --port P --user U --password PW [--subscribe F]... [--publish T]...
"""

import argparse
import asyncio
import json

from amqtt.client import MQTTClient


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--subscribe", action="append", default=[])
    parser.add_argument("--publish", action="append", default=[])
    args = parser.parse_args()
    client = MQTTClient(client_id=f"c-{args.user}", config={"auto_reconnect": False})
    result = {"connected": False, "granted": [], "received": []}
    try:
        await client.connect(f"mqtt://{args.user}:{args.password}@127.0.0.1:{args.port}/")
        result["connected"] = True
    except Exception as e:  # the broker refused the login
        result["error"] = type(e).__name__
        print(json.dumps(result), flush=True)
        return
    if args.subscribe:
        result["granted"] = await client.subscribe([(f, 0) for f in args.subscribe])
    for topic in args.publish:
        await client.publish(topic, f"from {args.user}".encode(), qos=0)
    try:
        while True:
            message = await client.deliver_message(timeout_duration=1.5)
            if message is None:
                break
            result["received"].append(message.topic)
    except asyncio.TimeoutError:
        pass
    await client.disconnect()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
