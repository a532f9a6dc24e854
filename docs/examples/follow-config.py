#!/usr/bin/env python3
# A service that follows the node's runtime config through the agent's local
# watch API (`tether run --health-listen 127.0.0.1:9464`): the document at
# once, then after every change, reconnecting with Last-Event-ID so a restart
# of the agent neither loses a version nor repeats one.
#
#   follow-config.py [http://127.0.0.1:9464] [keys]
import http.client
import json
import sys
import time
import urllib.parse

base = urllib.parse.urlsplit(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9464")
path = "/v1/config/events" + ("?keys=" + sys.argv[2] if len(sys.argv) > 2 else "")
last_id = None


def apply(version, config):
    # Here the service would swap in its new settings.
    print("config", version, json.dumps(config, sort_keys=True), flush=True)


while True:
    try:
        conn = http.client.HTTPConnection(base.hostname, base.port, timeout=60)  # > the 15 s comments
        conn.request("GET", path, headers={"Last-Event-ID": last_id} if last_id else {})
        resp = conn.getresponse()
        if resp.status != 200:
            raise OSError("status %d" % resp.status)
        event = {}
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.decode().rstrip("\n")
            if line == "":
                if event.get("event") == "config":
                    last_id = event["id"]
                    apply(int(last_id), json.loads(event["data"]))
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                event[name] = value[1:] if value.startswith(" ") else value
    except (OSError, http.client.HTTPException) as e:
        print("config stream:", e, "- reconnecting", file=sys.stderr, flush=True)
    time.sleep(1)
