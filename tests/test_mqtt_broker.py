"""The private broker the MQTT tests use: it starts, carries messages, keeps
retained ones across a restart, and its password and TLS variants refuse
what they must."""

import pytest

from mqtt_broker import Collector, broker, password_broker, retained, tls_broker  # noqa: F401


def publish(broker, topic, payload, retain=False, **options):
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if options.get("username"):
        client.username_pw_set(options["username"], options.get("password"))
    if options.get("tls_ca"):
        client.tls_set(ca_certs=str(options["tls_ca"]))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_message_reaches_a_subscriber(broker):
    collector = Collector(broker, ("t/#",))
    try:
        publish(broker, "t/a", b"one")
        collector.wait(lambda c: c.on("t/a") == [b"one"])
    finally:
        collector.close()


def test_retained_messages_outlive_a_broker_restart(broker):
    publish(broker, "t/kept", b"still here", retain=True)
    broker.stop()
    broker.start()
    assert retained(broker, "t/#") == {"t/kept": b"still here"}


def test_the_password_variant_refuses_a_wrong_password(password_broker):
    with pytest.raises(AssertionError, match="could not subscribe: Not authorized"):
        Collector(password_broker, username="board", password="wrong")
    publish(password_broker, "t/a", b"x", retain=True, username="board", password="s3cret")
    assert retained(password_broker, "t/#", username="board", password="s3cret") == {"t/a": b"x"}


def test_the_tls_variant_speaks_tls_with_the_test_ca(tls_broker):
    publish(tls_broker, "t/a", b"secure", retain=True, tls_ca=tls_broker.files.ca_file)
    assert retained(tls_broker, "t/#", tls_ca=tls_broker.files.ca_file) == {"t/a": b"secure"}
