# MQTT for the node: `from mqtt.client import MQTTClient, MQTTException` (see client.py).
# Kept empty so importing the package costs nothing; never name it `umqtt` (frozen on ESP32).
