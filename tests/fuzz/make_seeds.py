"""Writes the seed corpora under corpus/. Run it again after changing it;
files found by fuzzing (crash-*, regression-*) are kept as they are.

The sensor seeds come from the bundled honeypot logs, with every address
replaced by one from the documentation ranges (RFC 5737 and RFC 3849)."""

import json
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "data")


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


SIGNAL = {"event_type": "credential_testing", "confidence": "high",
          "source_region": "JP", "proxy_type": "residential", "threat_stage": "ATTACK",
          "related_domain": "bank.example", "timestamp": "2026-01-03T04:05:06Z",
          "recommended_action": "block"}
LEGACY = {"event_type": "sim_recon", "attack_confidence": "medium", "source_country": "de",
          "infrastructure": "residential-proxy", "threat_stage": "TESTING",
          "related_domain": "Bücher.Example.", "timestamp": "2026-01-03T13:05:06.123+09:00",
          "recommended_action": "monitor_or_step_up_auth", "sensor": "s-1",
          "campaign_id": "c1", "credential_leaked": True, "infra_id": "inf_0123456789abcdef",
          "username": "dropped", "password": "dropped"}


def batch_json():
    write("batch_json", "object.json", json.dumps(SIGNAL))
    write("batch_json", "array.json", json.dumps([SIGNAL, LEGACY]))
    write("batch_json", "legacy.json", json.dumps(LEGACY, ensure_ascii=False))
    write("batch_json", "lines.ndjson", "\n".join(json.dumps(s) for s in (SIGNAL, LEGACY, SIGNAL)) + "\n\n")
    write("batch_json", "bad_value.json", json.dumps(dict(SIGNAL, confidence="extreme")))
    write("batch_json", "duplicate_key.json", '{"event_type":"sim_recon","event_type":"fraud_test"}')
    write("batch_json", "deep.json", "[" * 40 + "]" * 40)
    write("batch_json", "surrogate.json", '{"related_domain":"\\udc00.example"}')
    write("batch_json", "big_int.json", '[{"seq":18446744073709551616}]')
    write("batch_json", "time_offset.json", json.dumps(dict(SIGNAL, timestamp="2026-02-29T00:00:00Z")))
    write("batch_json", "wildcard.json", json.dumps(dict(SIGNAL, related_domain="*.bank.example")))


def mp(obj):
    """A small MessagePack encoder for seeds (strings, ints, bools, lists, dicts)."""
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 128:
            return bytes([obj])
        if obj >= 0:
            return b"\xcf" + struct.pack(">Q", obj)
        return b"\xd3" + struct.pack(">q", obj)
    if isinstance(obj, str):
        b = obj.encode()
        if len(b) < 32:
            return bytes([0xa0 | len(b)]) + b
        return b"\xd9" + bytes([len(b)]) + b
    if isinstance(obj, bytes):
        return b"\xc4" + bytes([len(obj)]) + obj
    if isinstance(obj, list):
        return bytes([0x90 | len(obj)]) + b"".join(mp(x) for x in obj)
    if isinstance(obj, dict):
        return bytes([0x80 | len(obj)]) + b"".join(mp(k) + mp(v) for k, v in obj.items())
    raise TypeError(obj)


def msgpack():
    write("msgpack", "map.mp", mp(SIGNAL))
    write("msgpack", "array.mp", mp([SIGNAL, LEGACY]))
    write("msgpack", "stored.mp", mp(dict(SIGNAL, id="sig_7", seq=7, received_us=1767413106000000)))
    write("msgpack", "legacy.mp", mp(LEGACY))
    write("msgpack", "huge_count.mp", b"\xdd\xff\xff\xff\xff\x80")
    write("msgpack", "truncated.mp", mp(SIGNAL)[:-5])
    write("msgpack", "nested.mp", b"\x91" * 100 + b"\xc0")
    write("msgpack", "int_key.mp", b"\x81\x01\x02")
    write("msgpack", "bin_value.mp", mp(dict(SIGNAL, related_domain=b"bank.example")))


FILTERS = [
    {},
    {"domains": ["bank.example", "*.bank.example"]},
    {"domains": ["BÜCHER.example."], "threat_only": True},
    {"event_types": ["sim_recon", "fraud_test"], "min_confidence": "medium"},
    {"stages": ["attack"], "regions": ["de", "FR"], "proxy_types": ["tor"]},
    {"actions": ["block", "alert_soc"], "confidences": ["low", "high"]},
    {"confidences": ["low"], "threat_only": True},
    {"domains": ["*.com"]},
    {"domains": []},
    {"colour": "red"},
    {"domains": ["d%d.example" % i for i in range(50)]},
]


def filters():
    for i, f in enumerate(FILTERS):
        write("filter", "filter_%02d.json" % i, json.dumps(f, ensure_ascii=False))


def subscribe():
    msgs = [
        {"op": "auth", "token": "ck_0123456789abcdef_" + "a" * 64},
        {"op": "auth", "token": "Bearer x"},
        {"op": "subscribe", "id": "s1", "filter": {"domains": ["bank.example"]}, "since_seq": 12},
        {"op": "subscribe", "id": "s2", "filter": {"threat_only": True},
         "since_time": "2026-01-03T00:00:00+09:00"},
        {"op": "subscribe", "id": "s3", "since_seq": "18446744073709551615", "epoch": "abc"},
        {"op": "subscribe", "id": "s4", "since_time": "2026-13-40T25:61:61Z"},
        {"op": "unsubscribe", "id": "s1"},
        {"op": "ping"},
    ]
    for i, m in enumerate(msgs):
        write("subscribe", "message_%02d.json" % i, json.dumps(m))


def anonymise(line):
    """Replaces IPv4 addresses by documentation addresses, keeping the
    mapping stable so that one source stays one source."""
    seen = {}

    def repl(m):
        if m.group(0) not in seen:
            n = len(seen)
            seen[m.group(0)] = "%s.%d" % (["192.0.2", "198.51.100", "203.0.113"][n % 3], 1 + n // 3)
        return seen[m.group(0)]
    return re.sub(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", repl, line)


def sensors():
    with open(os.path.join(DATA, "tpot-cowrie-gcp-2025-10", "cowrie.json")) as f:
        lines = f.read().splitlines()
    text = anonymise("\n".join(lines))
    lines = text.splitlines()
    interesting = [i for i, l in enumerate(lines)
                   if "login." in l or "command." in l or "session.params" in l]
    for n, start in enumerate(interesting[:: max(1, len(interesting) // 24)][:24]):
        write("sensor_cowrie", "cowrie_%02d.jsonl" % n, "\n".join(lines[max(0, start - 3):start + 12]) + "\n")
    write("sensor_cowrie", "not_json.jsonl", "cowrie.login.failed\n{\n")
    with open(os.path.join(DATA, "opencanary-sample", "opencanary.json")) as f:
        canary = anonymise(f.read()).splitlines()
    for n in range(0, len(canary), 3):
        write("sensor_opencanary", "opencanary_%02d.jsonl" % n, "\n".join(canary[n:n + 4]) + "\n")
    write("sensor_opencanary", "bad_types.jsonl",
          '{"logtype":"2000","src_host":7,"dst_port":"x","utc_time":5}\n')


batch_json()
msgpack()
filters()
subscribe()
sensors()
