"""Random signals and a reference filter for the REST list tests: what a
list with given query parameters must contain, computed in Python from
the signals a test ingested."""

import calendar
import time

from canary import ingest

EVENT_TYPES = ["credential_testing", "account_probe", "sim_recon", "fraud_test"]
CONFIDENCES = ["low", "medium", "high"]
STAGES = ["TESTING", "ATTACK"]
PROXIES = ["datacenter", "residential", "mobile", "tor"]
ACTIONS = ["monitor", "step_up", "block", "alert_soc"]
REGIONS = ["JP", "US", "DE", "BR", "ZZ", "EU"]


def ingest_ok(srv, key, sigs):
    """Ingests sigs and returns the 202 body; any other status fails the
    test."""
    status, body = ingest(srv, key, sigs)
    if status != 202:
        raise AssertionError("ingest answered %r: %r" % (status, body))
    return body


def rfc3339(t):
    whole = int(t)
    ms = int(round((t - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return text + ("" if ms == 0 else ".%03d" % ms) + "Z"


def parse_time(text):
    base, _, frac = text.rstrip("Z").partition(".")
    t = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return t + (float("0." + frac) if frac else 0.0)


def random_signal(rng, t, domains):
    return {
        "event_type": rng.choice(EVENT_TYPES),
        "confidence": rng.choice(CONFIDENCES),
        "source_region": rng.choice(REGIONS),
        "proxy_type": rng.choice(PROXIES),
        "threat_stage": rng.choice(STAGES),
        "related_domain": rng.choice(domains),
        "timestamp": rfc3339(t),
        "recommended_action": rng.choice(ACTIONS),
        "sensor": "sensor-%d" % rng.randrange(3),
    }


def domain_matches(pattern, name):
    pattern = pattern.lower()
    if pattern.startswith("*."):
        return name.endswith("." + pattern[2:]) and len(name) > len(pattern) - 1
    return pattern == name


def matches(sig, params, threat_feed=False):
    """Whether a list with these query parameters contains sig."""
    def values(name, upper=False):
        v = params.get(name)
        if v is None:
            return None
        v = v if isinstance(v, list) else [v]
        out = [x for item in v for x in item.split(",")]
        return [x.upper() if upper else x.lower() for x in out]

    rank = CONFIDENCES.index(sig["confidence"])
    if threat_feed and sig["confidence"] != "high":
        return False
    if values("domain") and not any(domain_matches(p, sig["related_domain"]) for p in values("domain")):
        return False
    for name, field, upper in (("event_type", "event_type", False), ("confidence", "confidence", False),
                               ("stage", "threat_stage", True), ("proxy_type", "proxy_type", False),
                               ("region", "source_region", True), ("action", "recommended_action", False)):
        allowed = values(name, upper)
        if allowed and (sig[field].upper() if upper else sig[field]) not in allowed:
            return False
    if "min_confidence" in params and rank < CONFIDENCES.index(params["min_confidence"]):
        return False
    if params.get("threat_only") == "true" and rank < 1:
        return False
    return True
