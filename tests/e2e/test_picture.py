#!/usr/bin/env python3
"""The incident picture of the fixture incident (tests/fixtures/incident), made by the real binary's
offline `render` with config report.picture = {format = "both"}: attachments/incident-timeline.svg
is well-formed XML with an accessible <title>/<desc>, holds no script, no event attribute and no
external reference, and its markers, phases and lanes match the figures of the report it sits in.
Then it is drawn by a real browser (Debian's chromium, headless --screenshot) and the PNG made by
rsvg-convert (through host.run) is checked: the expected size, and the phase colours where the
phases are. Uses tests/e2e/test_render.py's helpers.
"""
import os
import re
import shutil
import struct
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET
import zlib

from test_render import BIN, FIXTURE

SVG_NS = "{http://www.w3.org/2000/svg}"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1"]


def png_pixels(data):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(width)])
        prev = line
    return width, height, rows


def hex_rgb(colour):
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def close(rgb, want, tolerance=12):
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, want))


class IncidentPicture(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="pmb-picture-")
        config = os.path.join(cls.work, "postmortembot.lua")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(config, "w") as f:
            f.write('return { scripts_dir = "%s/scripts", templates_dir = "%s/templates", data_dir = "%s/data",\n'
                    '  timezone = "Europe/Berlin", report = { picture = { format = "both", mermaid = true } } }\n'
                    % (root, root, cls.work))
        out = os.path.join(cls.work, "out")
        os.makedirs(out)
        env = dict(os.environ)
        env.pop("POSTMORTEMBOT_DATA_DIR", None)
        p = subprocess.run([BIN, "render", os.path.join(FIXTURE, "thread.json"), "--users",
                            os.path.join(FIXTURE, "users.json"), "-c", config, "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60, env=env)
        if p.returncode != 0:
            raise AssertionError("render failed: " + p.stderr[-2000:])
        cls.md_path = p.stdout.strip().splitlines()[-1]
        with open(cls.md_path, encoding="utf-8") as f:
            cls.md = f.read()
        cls.svg_path = os.path.join(out, "attachments", "incident-timeline.svg")
        cls.png_path = os.path.join(out, "attachments", "incident-timeline.png")
        with open(cls.svg_path, "rb") as f:
            cls.svg = f.read()
        cls.root = ET.fromstring(cls.svg)  # well-formed XML, or the class fails here

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def groups(self, cls_name):
        return [g for g in self.root.iter(SVG_NS + "g") if cls_name in (g.get("class") or "").split()]

    def key_times(self):
        """{"Start": "2024-11-14 23:41:07", ...} from the report's Key times section."""
        return dict(re.findall(r"^- \*\*([A-Za-z ]+):\*\* \[([0-9-]+ [0-9:]+)\]", self.md, re.M))

    def test_embedded_near_the_top_with_the_png_and_mermaid(self):
        head = self.md.split("## Key times")[0]
        self.assertIn("](attachments/incident-timeline.svg) · [PNG](attachments/incident-timeline.png)", head)
        self.assertIn("```mermaid\ngantt\n", head)

    def test_is_a_safe_svg(self):
        self.assertEqual(SVG_NS + "svg", self.root.tag)
        text = self.svg.decode("utf-8")
        self.assertNotIn("<!DOCTYPE", text)
        self.assertNotIn("<!ENTITY", text)
        for el in self.root.iter():
            tag = el.tag.replace(SVG_NS, "")
            self.assertNotIn(tag.lower(), ("script", "foreignobject", "image", "use", "a", "iframe"), tag)
            for name, value in el.attrib.items():
                local = name.split("}")[-1].lower()
                self.assertFalse(local.startswith("on"), "event attribute %s on <%s>" % (name, tag))
                self.assertNotEqual("href", local, "reference on <%s>" % tag)
                for ref in re.findall(r"url\(\s*['\"]?([^)'\"]*)", value):
                    self.assertTrue(ref.startswith("#"), "external url(%s)" % ref)
            if tag == "style":
                self.assertNotIn("@import", el.text or "")
                for ref in re.findall(r"url\(\s*['\"]?([^)'\"]*)", el.text or ""):
                    self.assertTrue(ref.startswith("#"), "external url(%s) in <style>" % ref)
        self.assertNotIn("@font-face", text)

    def test_is_accessible_text(self):
        title = self.root.find(SVG_NS + "title")
        desc = self.root.find(SVG_NS + "desc")
        self.assertEqual("Incident timeline: Checkout errors: card payments failing in eu-west", title.text)
        self.assertIn("Europe/Berlin", desc.text)
        self.assertEqual("img", self.root.get("role"))
        texts = [t.text for t in self.root.iter(SVG_NS + "text") if t.text]
        self.assertIn("Mitigation", texts)

    def test_markers_match_the_figures_of_the_report(self):
        times = self.key_times()
        self.assertEqual({"Start", "First response", "Mitigation", "Resolution"}, set(times))
        for name, kind in (("Start", "start"), ("First response", "first-response"), ("Mitigation", "mitigation"),
                           ("Resolution", "resolution")):
            groups = self.groups("marker-" + kind)
            self.assertEqual(1, len(groups), kind)
            self.assertEqual("%s %s" % (name, times[name]), groups[0].find(SVG_NS + "title").text)
        # one marker per status update and per collapsed alert storm of the timeline
        self.assertEqual(len(re.findall(r"· \*\*status update\*\*", self.md)), len(self.groups("marker-status-update")))
        storms = re.findall(r"_repeated (\d+) times", self.md)
        self.assertTrue(storms)
        labels = sorted(g.find(SVG_NS + "title").text.split(" ")[1] for g in self.groups("marker-alert-storm"))
        self.assertEqual(sorted("×" + n for n in storms), labels)
        # markers stand where their times are: x grows with time
        xs = {n: float(self.groups("marker-" + k)[0].find(SVG_NS + "line").get("x1"))
              for n, k in (("Start", "start"), ("First response", "first-response"), ("Mitigation", "mitigation"),
                           ("Resolution", "resolution"))}
        self.assertLess(xs["Start"], xs["First response"])
        self.assertLess(xs["First response"], xs["Mitigation"])
        self.assertLess(xs["Mitigation"], xs["Resolution"])

    def test_phases_carry_the_durations_of_the_report(self):
        phases = {g.get("class").split()[1]: g.find(SVG_NS + "title").text for g in self.groups("phase")}
        self.assertEqual({"phase-response", "phase-mitigation", "phase-resolution"}, set(phases))
        table = dict(((a, b), took) for a, b, took in
                     re.findall(r"^\| (\w[\w ]*) \| (\w[\w ]*) \| \*\*([^*]+)\*\* \|$", self.md, re.M))
        self.assertTrue(phases["phase-response"].startswith("to first response: %s " % table[("Start", "First response")]))
        self.assertTrue(phases["phase-resolution"].startswith("to resolution: %s " % table[("Mitigation", "Resolution")]))

    def test_lanes_are_the_people_who_spoke(self):
        lanes = [t.text for g in self.groups("lane") for t in g.iter(SVG_NS + "text")]
        # entry headers: "- **23:41:07** · **Name**", bots marked " (bot)"; Markdown escapes undone
        authors = set(re.findall(r"^- \*\*\d\d:\d\d:\d\d\*\* · \*\*((?:[^*\\]|\\.)+)\*\*(?! \(bot\))",
                                 self.md, re.M))
        names = {re.sub(r" \(\d+\)$", "", lane) for lane in lanes}
        self.assertEqual({re.sub(r"\\(.)", r"\1", a) for a in authors}, names)
        self.assertEqual(11, len(names))

    def test_rsvg_convert_made_the_png_of_the_expected_size(self):
        with open(self.png_path, "rb") as f:
            data = f.read()
        width, height, rows = png_pixels(data)
        self.assertEqual((int(self.root.get("width")), int(self.root.get("height"))), (width, height))
        self.assert_phases_drawn(rows)

    def test_chromium_draws_it(self):
        chromium = shutil.which("chromium")
        self.assertIsNotNone(chromium, "chromium is not installed (make deps)")
        width, height = int(self.root.get("width")), int(self.root.get("height"))
        shot = os.path.join(self.work, "shot.png")
        profile = tempfile.mkdtemp(prefix="pmb-chromium-", dir=self.work)
        p = subprocess.run([chromium] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile,
                                                          "--window-size=%d,%d" % (width, height),
                                                          "--screenshot=" + shot, "file://" + self.svg_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertTrue(os.path.isfile(shot), p.stderr.decode(errors="replace")[-2000:])
        with open(shot, "rb") as f:
            w, h, rows = png_pixels(f.read())
        self.assertEqual((width, height), (w, h))
        self.assert_phases_drawn(rows)

    def assert_phases_drawn(self, rows):
        """The centre of each phase span has that phase's colour."""
        for g in self.groups("phase"):
            rect = g.find(SVG_NS + "rect")
            x = float(rect.get("x")) + float(rect.get("width")) / 2
            y = float(rect.get("y")) + float(rect.get("height")) / 2
            # step off any label text inside the span: look for the colour along the span's middle
            want = hex_rgb(rect.get("fill"))
            xs = [int(float(rect.get("x")) + 2 + i) for i in range(int(float(rect.get("width"))) - 4)] or [int(x)]
            self.assertTrue(any(close(rows[int(y) - 6][px], want) for px in xs),
                            "phase %s not drawn in %s" % (g.get("class"), rect.get("fill")))


if __name__ == "__main__":
    unittest.main()
