"""A minimal, correct cross-postback publisher in Python (pika).

Publishes each line of a file (or standard input) as one event: to the durable topic exchange,
routing key conversion.<status>, persistent, mandatory, with publisher confirms and the
x-conversion-id header. Exits 1 if the broker refuses or cannot route a message.

    AMQP_URL=amqp://guest:guest@localhost:5672/%2f EXCHANGE=conversions python3 publish.py events.jsonl
"""

import json
import os
import sys

import pika


def publish(channel, exchange, event):
    """Publishes one event; raises if the broker did not take it."""
    body = json.dumps(event, separators=(",", ":")).encode()
    channel.basic_publish(
        exchange=exchange,
        routing_key="conversion." + str(event["status"]).lower(),
        body=body,
        properties=pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,  # survives a broker restart
            content_type="application/json",
            headers={"x-conversion-id": str(event["conversion_id"])},
        ),
        mandatory=True,  # an unroutable message comes back as an error, not silently dropped
    )


def main():
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2f")
    exchange = os.environ.get("EXCHANGE", "conversions")
    source = open(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "-" else sys.stdin
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()  # each basic_publish now waits for the broker's ack
    sent = 0
    try:
        for line in source:
            if line.strip():
                publish(channel, exchange, json.loads(line))
                sent += 1
    except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as e:
        print(f"not accepted by the broker: {e}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    print(f"published {sent} message" + ("" if sent == 1 else "s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
