#!/usr/bin/env python3
"""Operations from outside (issue 7): /metrics parsed line by line by a strict Prometheus text
format parser (written here, with its own tests), the metric families an operator relies on and
their counters moving as envelopes flow, /healthz while connected and after the link is lost, the
systemd unit (systemd-analyze verify), `make install DESTDIR=...` and `check` on the installed tree,
and `make demo` (tools/demo.py). Uses tests/e2e/harness.py and tests/fakeslack; covers
core/health.c, core/metrics.c and what socketmode.c, http.c, host.c and primitives_io.c record.
"""
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import zipfile

from harness import REPO, BotTestCase, CommandBotTestCase, bot_binary, free_port

ALICE = "U01ALICE"  # a human of tests/fixtures/incident


# --- a strict parser of the Prometheus text exposition format (version 0.0.4) --------------
class ExpositionError(ValueError):
    pass


METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
FLOAT = re.compile(r"[+-]?(?:Inf|NaN|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_float(text, where):
    if not FLOAT.match(text):
        raise ExpositionError("%s: %r is not a Prometheus float" % (where, text))
    if text.lstrip("+-") == "NaN" and text[0] in "+-":
        raise ExpositionError("%s: a signed NaN" % where)
    return float(text)


def _label_set(s, pos, where):
    """Parse `{name="value",...}` starting at s[pos] == "{"; returns (labels dict, pos after })."""
    labels = {}
    pos += 1
    while True:
        if pos < len(s) and s[pos] == "}":
            return labels, pos + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(s, pos)
        if not m:
            raise ExpositionError("%s: bad label name at column %d" % (where, pos + 1))
        name = m.group(0)
        if name.startswith("__"):
            raise ExpositionError("%s: label name %r is reserved" % (where, name))
        if name in labels:
            raise ExpositionError("%s: label %r twice" % (where, name))
        pos = m.end()
        if s[pos:pos + 2] != '="':
            raise ExpositionError("%s: expected =\" after label %r" % (where, name))
        pos += 2
        value = []
        while True:
            if pos >= len(s):
                raise ExpositionError("%s: unterminated label value" % where)
            c = s[pos]
            if c == "\\":
                nxt = s[pos + 1:pos + 2]
                if nxt not in ('\\', '"', 'n'):
                    raise ExpositionError("%s: bad escape \\%s in a label value" % (where, nxt))
                value.append("\n" if nxt == "n" else nxt)
                pos += 2
            elif c == '"':
                pos += 1
                break
            else:
                value.append(c)
                pos += 1
        labels[name] = "".join(value)
        if pos < len(s) and s[pos] == ",":
            pos += 1
        elif pos < len(s) and s[pos] == "}":
            continue
        else:
            raise ExpositionError("%s: expected , or } after label %r" % (where, name))


def _family_of(sample_name, families):
    """The declared family a sample name belongs to, and the sample's suffix."""
    if sample_name in families and families[sample_name]["type"] != "histogram":
        return sample_name, ""
    for suffix in ("_bucket", "_sum", "_count"):
        if sample_name.endswith(suffix):
            base = sample_name[:-len(suffix)]
            fam = families.get(base)
            if fam and (fam["type"] == "histogram" or (fam["type"] == "summary" and suffix != "_bucket")):
                return base, suffix
    return sample_name, ""


def parse_exposition(text):
    """Parse a whole /metrics body; raise ExpositionError at the first violation. Returns
    {family: {"type", "help", "samples": [(sample_name, labels, value)]}}. Every family must
    have HELP and TYPE before its samples, and all its lines must form one group."""
    if text and not text.endswith("\n"):
        raise ExpositionError("the exposition does not end with a newline")
    families = {}
    seen_series = set()
    closed = set()   # families whose group of lines has ended
    current = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d (%r)" % (n, line)
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                if len(parts) < 3 or not METRIC_NAME.match(parts[2]):
                    raise ExpositionError("%s: bad metric name" % where)
                name = parts[2]
                if name in closed or (current is not None and name != current and name in families):
                    raise ExpositionError("%s: the lines of %s are not one group" % (where, name))
                if current is not None and current != name:
                    closed.add(current)
                current = name
                fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
                if fam["samples"]:
                    raise ExpositionError("%s: %s after the samples of %s" % (where, parts[1], name))
                if parts[1] == "HELP":
                    if fam["help"] is not None:
                        raise ExpositionError("%s: second HELP for %s" % (where, name))
                    doc = parts[3] if len(parts) > 3 else ""
                    if "\\" in re.sub(r"\\[\\n]", "", doc):
                        raise ExpositionError("%s: bad escape in HELP" % where)
                    fam["help"] = doc
                else:
                    if fam["type"] is not None:
                        raise ExpositionError("%s: second TYPE for %s" % (where, name))
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise ExpositionError("%s: bad TYPE" % where)
                    fam["type"] = parts[3]
            continue  # any other comment
        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
        if not m:
            raise ExpositionError("%s: bad metric name" % where)
        sample_name = m.group(0)
        pos = m.end()
        labels = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = _label_set(line, pos, where)
        rest = line[pos:]
        if not rest.startswith(" "):
            raise ExpositionError("%s: expected a space before the value" % where)
        fields = rest.split(" ")[1:]
        if len(fields) not in (1, 2) or "" in fields:
            raise ExpositionError("%s: expected `value [timestamp]` after the labels" % where)
        value = parse_float(fields[0], where)
        if len(fields) == 2 and not re.match(r"-?\d+\Z", fields[1]):
            raise ExpositionError("%s: bad timestamp" % where)
        family, suffix = _family_of(sample_name, families)
        fam = families.get(family)
        if fam is None or fam["type"] is None or fam["help"] is None:
            raise ExpositionError("%s: sample of %s without HELP and TYPE before it" % (where, family))
        if family != current:
            raise ExpositionError("%s: the lines of %s are not one group" % (where, family))
        if fam["type"] == "counter" and (math.isnan(value) or value < 0):
            raise ExpositionError("%s: a counter must be a non-negative number" % where)
        if suffix == "_bucket" and "le" not in labels:
            raise ExpositionError("%s: a histogram bucket without le" % where)
        if suffix != "_bucket" and "le" in labels and fam["type"] == "histogram":
            raise ExpositionError("%s: le outside a bucket" % where)
        key = (sample_name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise ExpositionError("%s: the same series twice" % where)
        seen_series.add(key)
        fam["samples"].append((sample_name, labels, value))
    for name, fam in families.items():
        if fam["type"] is None or fam["help"] is None:
            raise ExpositionError("%s has no %s" % (name, "TYPE" if fam["type"] is None else "HELP"))
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"])
    return families


def check_histogram(name, samples):
    """Per label set: buckets in increasing le, cumulative, ending at +Inf == _count; _sum present."""
    series = {}
    for sample_name, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if sample_name == name + "_bucket":
            s["buckets"].append((parse_float(labels["le"], "%s le" % name), value))
        elif sample_name == name + "_sum":
            s["sum"] = value
        else:
            s["count"] = value
    for key, s in series.items():
        what = "%s%s" % (name, dict(key) if key else "")
        if s["sum"] is None or s["count"] is None:
            raise ExpositionError("%s: _sum or _count missing" % what)
        if not s["buckets"] or s["buckets"][-1][0] != math.inf:
            raise ExpositionError("%s: the last bucket is not le=\"+Inf\"" % what)
        les = [le for le, _ in s["buckets"]]
        if les != sorted(les) or len(set(les)) != len(les):
            raise ExpositionError("%s: le values not strictly increasing: %r" % (what, les))
        counts = [c for _, c in s["buckets"]]
        if any(b < a for a, b in zip(counts, counts[1:])):
            raise ExpositionError("%s: buckets not cumulative: %r" % (what, counts))
        if counts[-1] != s["count"]:
            raise ExpositionError("%s: +Inf bucket %r != _count %r" % (what, counts[-1], s["count"]))


def value_of(families, family, sample=None, **labels):
    """The value of one series (0 when the family or series is absent: counters start at 0)."""
    fam = families.get(family)
    if not fam:
        return 0.0
    want = sample or family
    for name, got, value in fam["samples"]:
        if name == want and got == labels:
            return value
    return 0.0


def total_of(families, family, sample=None):
    """The sum over every label set of a family's samples named `sample` (default: the family)."""
    fam = families.get(family)
    if not fam:
        return 0.0
    want = sample or family
    return sum(value for name, _, value in fam["samples"] if name == want)


# What issue 7 asks for: family -> (type, label names of its series other than le).
EXPECTED_FAMILIES = {
    "pmb_socket_connected": ("gauge", set()),
    "pmb_socket_reconnects_total": ("counter", set()),
    "pmb_envelopes_received_total": ("counter", set()),
    "pmb_envelopes_acked_total": ("counter", set()),
    "pmb_envelopes_duplicate_total": ("counter", set()),
    "pmb_ack_latency_seconds": ("histogram", set()),
    "pmb_api_calls_total": ("counter", {"method", "outcome"}),
    "pmb_api_429_total": ("counter", None),      # labels: the implementer's choice
    "pmb_api_retries_total": ("counter", None),
    "pmb_downloads_total": ("counter", None),
    "pmb_download_bytes_total": ("counter", None),
    "pmb_reloads_total": ("counter", {"outcome"}),
    "pmb_generation": ("gauge", set()),
    "pmb_commands_total": ("counter", {"command", "outcome"}),
    "pmb_command_api_calls_total": ("counter", {"command"}),
    "pmb_command_last_api_calls": ("gauge", {"command"}),
    "pmb_report_build_seconds": ("histogram", None),
}


class ExpositionParserTest(unittest.TestCase):
    """The parser must refuse what Prometheus refuses, or the metrics tests prove nothing."""

    GOOD = ("# HELP a_total things, with a \\\\ backslash\n# TYPE a_total counter\n"
            'a_total{m="x\\"y\\\\z\\n",o="ok"} 3\na_total{m="b"} 1e3\n'
            "# HELP g a gauge\n# TYPE g gauge\ng -Inf\n"
            "# HELP h_seconds a histogram\n# TYPE h_seconds histogram\n"
            'h_seconds_bucket{le="0.5"} 1\nh_seconds_bucket{le="1"} 2\nh_seconds_bucket{le="+Inf"} 3\n'
            "h_seconds_sum 4.5\nh_seconds_count 3\n")

    def test_accepts_a_valid_exposition(self):
        fams = parse_exposition(self.GOOD)
        self.assertEqual({"a_total", "g", "h_seconds"}, set(fams))
        self.assertEqual('x"y\\z\n', fams["a_total"]["samples"][0][1]["m"])
        self.assertEqual(1000.0, value_of(fams, "a_total", m="b"))
        self.assertEqual(-math.inf, value_of(fams, "g"))
        self.assertEqual(3.0, value_of(fams, "h_seconds", "h_seconds_count"))

    def test_refuses_broken_expositions(self):
        g = self.GOOD
        bad = {
            "no final newline": g[:-1],
            "bad metric name": g.replace("g -Inf", "9g -Inf"),
            "bad label escape": g.replace('\\"y', '\\ty'),
            "unquoted label": g.replace('m="b"', "m=b"),
            "duplicate label": g.replace('m="b"', 'm="b",m="c"'),
            "bad value": g.replace("1e3", "1,000"),
            "same series twice": g.replace('a_total{m="b"} 1e3', 'a_total{m="b"} 1e3\na_total{m="b"} 2'),
            "no TYPE": g.replace("# TYPE g gauge\n", ""),
            "no HELP": g.replace("# HELP g a gauge\n", ""),
            "unknown TYPE": g.replace("g gauge", "g gauges"),
            "negative counter": g.replace("1e3", "-1"),
            "not cumulative": g.replace('le="1"} 2', 'le="1"} 0'),
            "no +Inf bucket": g.replace('h_seconds_bucket{le="+Inf"} 3\n', ""),
            "+Inf != count": g.replace("h_seconds_count 3", "h_seconds_count 4"),
            "bucket without le": g.replace('h_seconds_bucket{le="0.5"} 1', "h_seconds_bucket 1"),
            "le out of order": g.replace('le="0.5"} 1\nh_seconds_bucket{le="1"} 2',
                                         'le="1"} 1\nh_seconds_bucket{le="0.5"} 2'),
            "split family": g + 'a_total{m="late"} 1\n',
            "reserved label": g.replace('m="b"', '__m="b"'),
            "extra field": g.replace("g -Inf", "g -Inf 12 x"),
            "bad HELP escape": g.replace("a \\\\ backslash", "a \\t tab"),
            "signed NaN": g.replace("g -Inf", "g -NaN"),
        }
        for why, text in bad.items():
            with self.subTest(why):
                self.assertNotEqual(g, text, "the mutation did not apply")
                with self.assertRaises(ExpositionError):
                    parse_exposition(text)


# --- helpers for the bot ------------------------------------------------------------------
def http_get(port, path, timeout=5):
    """(status, content type, body text) of GET http://127.0.0.1:port/path (4xx/5xx too)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode("utf-8")


class OpsBotTest(BotTestCase):
    def start_listening_bot(self, **kw):
        self.port = free_port()
        env = dict(kw.pop("env", {}), POSTMORTEMBOT_LISTEN="127.0.0.1:%d" % self.port)
        return self.start_bot(env=env, **kw)

    def scrape(self):
        status, ctype, body = http_get(self.port, "/metrics")
        self.assertEqual(200, status, body)
        self.assertRegex(ctype, r"^text/plain(;|$)")
        self.assertIn("version=0.0.4", ctype)
        try:
            return parse_exposition(body)
        except ExpositionError as e:
            self.fail("/metrics is not valid Prometheus text: %s\n---\n%s" % (e, body))

    def wait_metrics(self, pred, what, timeout=10):
        """Scrape until pred(families) is true; returns the families."""
        deadline = time.monotonic() + timeout
        while True:
            fams = self.scrape()
            if pred(fams):
                return fams
            if time.monotonic() >= deadline:
                self.fail("timed out waiting for %s in /metrics" % what)
            time.sleep(0.05)

    def healthz(self):
        status, ctype, body = http_get(self.port, "/healthz")
        self.assertRegex(ctype, r"^application/json")
        try:
            return status, json.loads(body)
        except ValueError:
            self.fail("/healthz did not answer JSON: %r" % body)


class MetricsTest(OpsBotTest):
    def test_families_after_the_traffic_that_feeds_them(self):
        # be the fixture's bot, as in test_autopsy
        self.fs.set_identity(user_id="U0PMBOT", bot_id="B0PMBOT", user="postmortembot")
        channel, parent = self.load_incident()
        bot = self.start_listening_bot()
        # faults: one 429 and one 500 on the thread read (both survived), on the way to a report
        self.fs.fault("conversations.replies", status=429, retry_after=1)
        self.fs.fault("conversations.replies", status=500)
        def api_requests():
            with self.fs.lock:
                return len([r for r in self.fs.requests if r.get("api_method")])
        before_command = api_requests()
        ts, env_id = self.fs.mention(channel, ALICE, "autopsy this", thread_ts=parent)
        self.fs.wait_for(lambda: self.fs.uploads, timeout=60, what="the report upload\n" + bot.tail(20))
        bot.wait_log(r'msg="command done".*command="autopsy this"', timeout=30)  # the coroutine ended
        # the command's Web API calls: what the fake answered, less the two faulted attempts the
        # core retried (one call each for the script)
        command_calls = api_requests() - before_command - 2
        zip_bytes = next(f["bytes"] for f in self.fs.uploaded_files() if f["filename"].endswith(".zip"))
        attachments = {n: len(zipfile.ZipFile(io.BytesIO(zip_bytes)).read(n))
                       for n in zipfile.ZipFile(io.BytesIO(zip_bytes)).namelist()
                       if n.startswith("attachments/") and not n.endswith("/")}
        # the incident picture (issue 17) is written by the bot, not downloaded
        self.assertGreater(attachments.pop("attachments/incident-timeline.svg"), 0)
        # a redelivery of the same envelope (duplicate), a reload, a refresh (reconnect)
        with self.fs.lock:
            first = next(e for e in self.fs.envelopes if e["envelope_id"] == env_id)
        self.fs.send_event(first["envelope"]["payload"]["event"], retry_attempt=1,
                           envelope_id=env_id, event_id=first["event_id"])
        self.fs.wait_for(lambda: len([a for a in self.fs.acks if a.envelope_id == env_id]) == 2, timeout=5,
                         what="the ack of the redelivery")
        mark = bot.mark()
        bot.send_signal(signal.SIGHUP)
        bot.wait_log(r"reload ok", after=mark, timeout=20)
        self.fs.send_disconnect("refresh_requested")
        self.fs.wait_for(lambda: self.fs.connect_count == 2, timeout=10, what="a second connection")
        fams = self.wait_metrics(lambda f: value_of(f, "pmb_envelopes_duplicate_total") >= 1
                                 and value_of(f, "pmb_socket_connected") == 1
                                 and value_of(f, "pmb_socket_reconnects_total") >= 1, "the redelivery and reconnect")

        for name, (mtype, label_names) in sorted(EXPECTED_FAMILIES.items()):
            with self.subTest(family=name):
                self.assertTrue(name in fams, "%s is not emitted; present: %s" % (name, sorted(fams)))
                self.assertEqual(mtype, fams[name]["type"])
                self.assertTrue(fams[name]["samples"], "%s has HELP/TYPE but no sample" % name)
                if label_names is not None:
                    for _, labels, _ in fams[name]["samples"]:
                        self.assertEqual(label_names, set(labels) - {"le"}, name)

        with self.subTest("values"):
            self.assertEqual(1, value_of(fams, "pmb_socket_connected"))
            self.assertEqual(2, value_of(fams, "pmb_generation"))
            self.assertEqual(1, value_of(fams, "pmb_reloads_total", outcome="ok"))
            self.assertEqual(0, value_of(fams, "pmb_reloads_total", outcome="failed"))
            self.assertEqual(1, value_of(fams, "pmb_envelopes_duplicate_total"))
            self.assertEqual(2, value_of(fams, "pmb_envelopes_received_total"))
            self.assertEqual(2, value_of(fams, "pmb_envelopes_acked_total"))
            self.assertEqual(2, value_of(fams, "pmb_ack_latency_seconds", "pmb_ack_latency_seconds_count"))
            self.assertGreaterEqual(value_of(fams, "pmb_socket_reconnects_total"), 1)
            self.assertEqual(1, value_of(fams, "pmb_api_calls_total", method="files.completeUploadExternal",
                                         outcome="ok"))
            self.assertGreaterEqual(total_of(fams, "pmb_api_429_total"), 1)
            self.assertGreaterEqual(total_of(fams, "pmb_api_retries_total"), 1)
        with self.subTest("downloads"):
            self.assertEqual(sum(attachments.values()), total_of(fams, "pmb_download_bytes_total"),
                             "bytes downloaded != bytes of the zip's attachments %r" % attachments)
            self.assertGreaterEqual(total_of(fams, "pmb_downloads_total"), len(attachments))
        with self.subTest("commands"):
            self.assertEqual(1, value_of(fams, "pmb_commands_total", command="autopsy this", outcome="ok"))
            self.assertEqual(command_calls, value_of(fams, "pmb_command_last_api_calls", command="autopsy this"))
            self.assertEqual(command_calls, value_of(fams, "pmb_command_api_calls_total", command="autopsy this"))
        with self.subTest("report build time"):
            self.assertEqual(1, value_of(fams, "pmb_report_build_seconds", "pmb_report_build_seconds_count"))

    def test_envelope_counters_move_as_events_flow(self):
        bot = self.start_listening_bot()
        self.fs.add_channel("C0OPS", "ops")
        self.fs.add_user("U0ALICE", "alice")
        before = self.scrape()
        self.assertEqual(1, value_of(before, "pmb_socket_connected"))

        def counts(f):
            return (value_of(f, "pmb_envelopes_received_total"), value_of(f, "pmb_envelopes_acked_total"),
                    value_of(f, "pmb_envelopes_duplicate_total"),
                    value_of(f, "pmb_ack_latency_seconds", "pmb_ack_latency_seconds_count"))
        r0, a0, d0, l0 = counts(before)
        posts0 = value_of(before, "pmb_api_calls_total", method="chat.postMessage", outcome="ok")
        help0 = value_of(before, "pmb_commands_total", command="help", outcome="ok")

        sent = []
        for i in range(3):
            sent.append(self.fs.send_event({"type": "reaction_added", "user": "U0ALICE", "reaction": "eyes",
                                            "item": {"type": "message", "channel": "C0OPS",
                                                     "ts": "1700000000.0001%02d" % i},
                                            "event_ts": "1700000001.0001%02d" % i}, event_id="Ev0OPSR%d" % i))
        for _ in range(2):
            sent.append(self.fs.mention("C0OPS", "U0ALICE", "help")[1])
        for env_id in sent:
            self.fs.wait_for(lambda: self.fs.ack_for(env_id), timeout=5, what="the ack of " + env_id)
        fams = self.wait_metrics(lambda f: value_of(f, "pmb_api_calls_total", method="chat.postMessage",
                                                    outcome="ok") >= posts0 + 2, "the two help replies")
        self.assertEqual((r0 + 5, a0 + 5, d0, l0 + 5), counts(fams))
        self.assertEqual(posts0 + 2, value_of(fams, "pmb_api_calls_total", method="chat.postMessage", outcome="ok"))

        # a redelivery: received and acked again, counted as a duplicate, not handled again
        with self.fs.lock:
            first = next(e for e in self.fs.envelopes if e["envelope_id"] == sent[0])
        self.fs.send_event(first["envelope"]["payload"]["event"], retry_attempt=1, envelope_id=sent[0],
                           event_id=first["event_id"])
        self.fs.wait_for(lambda: len([a for a in self.fs.acks if a.envelope_id == sent[0]]) == 2, timeout=5,
                         what="the ack of the redelivery")
        fams = self.wait_metrics(lambda f: value_of(f, "pmb_envelopes_duplicate_total") >= d0 + 1, "the duplicate")
        self.assertEqual((r0 + 6, a0 + 6, d0 + 1, l0 + 6), counts(fams))
        with self.subTest("pmb_commands_total{command=\"help\"}"):
            self.assertEqual(help0 + 2, value_of(fams, "pmb_commands_total", command="help", outcome="ok"),
                             "pmb_commands_total is not counted (families: %s)" % sorted(fams))
        del bot


# host.collect_garbage("generational") as a big report calls it once its thread is read: "hold NAME"
# holds until "hold release NAME" (so the test can look at /metrics meanwhile); "hold fail" raises
HOLD = r"""local host = require "host"
local released, wake = {}, host.signal()
return { name = "hold", help = "hold — the collector in generational mode", run = function(ctx, args)
  local name = args:match("^release (%S+)$")
  if name then
    released[name] = true
    wake:notify()
    return
  end
  local refused = not pcall(host.collect_garbage, "sideways")
  host.collect_garbage("generational")
  host.collect_garbage("generational") -- the same command: still one hold
  ctx.reply("holding " .. args .. " refused=" .. tostring(refused))
  while not released[args] do wake:wait() end
  if args == "fail" then error("failing while holding") end
  ctx.reply("done " .. args)
end }
"""


class CollectorModeTest(CommandBotTestCase):
    """A command that puts the script collector in generational mode holds it until it ends, however
    it ends; /metrics says how many commands hold it (core/host/host_gen.c host_gen_hold_young)."""
    CHANNEL = "C0GCMODE"

    def generational(self, port):
        status, _, body = http_get(port, "/metrics")
        self.assertEqual(200, status, body)
        return value_of(parse_exposition(body), "pmb_script_collector_generational")

    def wait_generational(self, port, want):
        deadline = time.monotonic() + 10
        while self.generational(port) != want:
            if time.monotonic() > deadline:
                self.fail("pmb_script_collector_generational never became %s" % want)
            time.sleep(0.05)

    def test_a_hold_ends_with_its_command_whether_it_succeeds_or_fails(self):
        self.fs.add_channel(self.CHANNEL, "gc-mode")
        port = free_port()
        self.bot_with({"hold": HOLD}, env={"POSTMORTEMBOT_LISTEN": "127.0.0.1:%d" % port})
        self.ask("hold ok")
        self.assertIn("refused=true", self.wait_post(r"^holding ok")["text"])
        self.wait_generational(port, 1)
        self.ask("hold fail")
        self.wait_post(r"^holding fail")
        self.wait_generational(port, 2)
        self.ask("hold release fail")
        self.wait_post(r"failing while holding")
        self.wait_generational(port, 1)
        self.ask("hold release ok")
        self.wait_post(r"^done ok")
        self.wait_generational(port, 0)


class HealthTest(OpsBotTest):
    def test_healthz_ok_while_connected_503_with_reason_when_not(self):
        bot = self.start_listening_bot()
        status, doc = self.healthz()
        self.assertEqual(200, status, doc)
        self.assertEqual("ok", doc.get("status"), doc)
        status, _, body = http_get(self.port, "/nothing-here")
        self.assertEqual(404, status, body)

        # Slack refuses new connections, then the link drops
        self.fs.always_fail("apps.connections.open", status=500)
        self.fs.drop()
        deadline = time.monotonic() + 10
        while True:
            status, doc = self.healthz()
            if status == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(503, status, doc)
        self.assertNotEqual("ok", doc.get("status"), doc)
        self.assertIsInstance(doc.get("reason"), str, doc)
        self.assertTrue(doc["reason"].strip(), "503 without a reason: %r" % doc)
        self.assertEqual(0, value_of(self.scrape(), "pmb_socket_connected"))
        self.assertTrue(bot.running())

        # Slack is back: healthy again without a restart
        self.fs.always_fail("apps.connections.open", None)
        deadline = time.monotonic() + 40
        while self.healthz()[0] != 200:
            if time.monotonic() > deadline:
                self.fail("/healthz did not recover after Slack came back\n" + bot.tail(20))
            time.sleep(0.2)
        self.assertEqual("ok", self.healthz()[1].get("status"))
        self.assertEqual(1, value_of(self.scrape(), "pmb_socket_connected"))


# --- packaging: the systemd unit, make install, make demo ---------------------------------
UNIT = os.path.join(REPO, "config", "postmortembot.service")


def unit_settings(text):
    """{(section, key): [values]} of a systemd unit file."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


class PackagingTest(unittest.TestCase):
    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="pmb-ops-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def binary(self):
        path = os.path.join(REPO, "bin", "postmortembot")
        if not os.access(path, os.X_OK):
            raise unittest.SkipTest("no bot binary at %s (run make)" % path)
        return path

    def test_systemd_unit_verifies(self):
        tool = shutil.which("systemd-analyze")
        if not tool:
            self.skipTest("systemd-analyze is not installed (Debian package systemd)")
        with open(UNIT, encoding="utf-8") as f:
            text = f.read()
        s = unit_settings(text)
        # what the README promises about the unit
        self.assertEqual(["/etc/postmortembot/env"], s.get(("Service", "EnvironmentFile")))
        self.assertRegex(s[("Service", "ExecStartPre")][0], r"^/usr/local/bin/postmortembot check -c \S+$")
        self.assertRegex(s[("Service", "ExecStart")][0], r"^/usr/local/bin/postmortembot -c \S+$")
        self.assertIn("-HUP", s[("Service", "ExecReload")][0])
        for key, value in (("Restart", "on-failure"), ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                           ("PrivateTmp", "yes")):
            self.assertEqual([value], s.get(("Service", key)), key)
        self.assertIn("/var/lib/postmortembot", " ".join(s.get(("Service", "ReadWritePaths"), [])))
        # verify a copy whose commands point at the built binary and the repo's config, with the
        # man page of Documentation= findable
        tmp = self.tmpdir()
        os.makedirs(os.path.join(tmp, "man", "man1"))
        shutil.copy(os.path.join(REPO, "docs", "postmortembot.1"), os.path.join(tmp, "man", "man1"))
        copy = os.path.join(tmp, "postmortembot.service")
        with open(copy, "w", encoding="utf-8") as f:
            f.write(text.replace("/usr/local/bin/postmortembot", self.binary())
                    .replace("/usr/local/etc/postmortembot/postmortembot.lua",
                             os.path.join(REPO, "config", "postmortembot.lua")))
        p = subprocess.run([tool, "verify", "--man=yes", copy], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, MANPATH=os.path.join(tmp, "man")))
        out = (p.stdout + p.stderr).strip()
        self.assertEqual(0, p.returncode, out)
        self.assertEqual("", out, "systemd-analyze verify warned")

    def test_make_install_tree_runs_check(self):
        binary = self.binary()
        dest = self.tmpdir()
        # -o: install what is built; a test does not rebuild the binary under the other tests
        p = subprocess.run(["make", "-s", "-o", "bin/postmortembot", "install", "DESTDIR=" + dest,
                            "PREFIX=/usr/local"], cwd=REPO, capture_output=True, text=True, timeout=120)
        self.assertEqual(0, p.returncode, p.stdout + p.stderr)
        root = os.path.join(dest, "usr", "local")
        installed = os.path.join(root, "bin", "postmortembot")
        self.assertTrue(os.access(installed, os.X_OK))
        with open(binary, "rb") as a, open(installed, "rb") as b:
            self.assertEqual(a.read(), b.read(), "the installed binary is not bin/postmortembot")
        self.assertTrue(os.path.isfile(os.path.join(root, "share", "man", "man1", "postmortembot.1")))
        share = os.path.join(root, "share", "postmortembot")
        for tree in ("scripts", "templates"):
            for dirpath, _, names in os.walk(os.path.join(REPO, tree)):
                for name in names:
                    src = os.path.join(dirpath, name)
                    rel = os.path.relpath(src, REPO)
                    with open(src, "rb") as a:
                        want = a.read()
                    got_path = os.path.join(share, rel)
                    self.assertTrue(os.path.isfile(got_path), "%s not installed" % rel)
                    with open(got_path, "rb") as b:
                        self.assertEqual(want, b.read(), rel)
        config = os.path.join(root, "etc", "postmortembot", "postmortembot.lua")
        with open(config, encoding="utf-8") as f:
            text = f.read()
        # the installed config names the final paths, not the staging dir
        self.assertIn('"/usr/local/share/postmortembot/scripts"', text)
        self.assertIn('"/usr/local/share/postmortembot/templates"', text)
        self.assertIn('"/var/lib/postmortembot"', text)
        self.assertNotIn(dest, text)
        # check the staged tree: the same config with its paths moved into DESTDIR
        staged = os.path.join(dest, "staged.lua")
        with open(staged, "w", encoding="utf-8") as f:
            f.write(text.replace('"/usr/local/share/postmortembot/', '"%s/' % share)
                    .replace('"/var/lib/postmortembot"', '"%s"' % os.path.join(dest, "var")))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POSTMORTEMBOT_"))}
        p = subprocess.run([installed, "check", "-c", staged], capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(0, p.returncode, p.stdout + p.stderr)
        self.assertIn(share, p.stdout + p.stderr)
        p = subprocess.run([installed, "--version"], capture_output=True, text=True, timeout=10)
        with open(os.path.join(REPO, "VERSION"), encoding="utf-8") as f:
            self.assertIn(f.read().strip(), p.stdout + p.stderr)

    def test_make_demo_prints_a_report(self):
        self.binary()
        env = dict(os.environ, POSTMORTEMBOT_BIN=bot_binary())
        p = subprocess.run([sys.executable, os.path.join(REPO, "tools", "demo.py")], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=180)
        out = p.stdout
        self.assertEqual(0, p.returncode, out + p.stderr)
        md = re.search(r"^report: (\S+\.md)$", out, re.M)
        bundle = re.search(r"^bundle: (\S+\.zip)$", out, re.M)
        self.assertTrue(md and bundle, out)
        md_path = os.path.join(REPO, md.group(1))
        zip_path = os.path.join(REPO, bundle.group(1))
        self.assertTrue(os.path.isfile(md_path), md_path)
        self.assertTrue(os.path.isfile(zip_path), zip_path)
        with open(md_path, encoding="utf-8") as f:
            title = f.readline().rstrip("\n")
        self.assertEqual("# Postmortem: Checkout errors: card payments failing in eu-west", title)
        self.assertIn("    " + title + "\n", out)
        with zipfile.ZipFile(zip_path) as z:
            self.assertIn(os.path.basename(md_path), z.namelist())


if __name__ == "__main__":
    unittest.main()
