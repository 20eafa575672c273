"""`make install` over an earlier install (issue 12, item 6): an edited config is kept and the new
one goes beside it as .dist; a script the operator deleted (a filter rule switched off) stays
deleted. Runs the real Makefile into a DESTDIR."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import REPO


class Install(unittest.TestCase):
    def setUp(self):
        self.dest = tempfile.mkdtemp(prefix="pmb-install-")

    def tearDown(self):
        shutil.rmtree(self.dest, ignore_errors=True)

    def install(self):
        p = subprocess.run(["make", "-s", "--no-print-directory", "install", "DESTDIR=" + self.dest, "PREFIX=/opt/pmb"],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
        self.assertEqual(0, p.returncode, p.stdout)
        return p.stdout

    def test_conffiles_kept(self):
        self.install()
        etc = os.path.join(self.dest, "opt/pmb/etc/postmortembot/postmortembot.lua")
        share = os.path.join(self.dest, "opt/pmb/share/postmortembot")
        rule = os.path.join(share, "scripts/filters/20-drop-joins.lua")
        template = os.path.join(share, "templates/postmortem.md.mustache")
        with open(etc) as f:
            self.assertIn('"/opt/pmb/share/postmortembot/scripts"', f.read())
        with open(etc, "a") as f:
            f.write("-- my edit\n")
        os.remove(rule)
        out = self.install()
        with open(etc) as f:
            self.assertIn("-- my edit", f.read())
        self.assertTrue(os.path.exists(etc + ".dist"))
        self.assertIn("kept your " + etc, out)
        self.assertFalse(os.path.exists(rule), "a deleted filter rule came back")
        self.assertTrue(os.path.exists(rule + ".dist"))
        self.assertIn(rule + " was removed after the last install", out)
        self.assertFalse(os.path.exists(template + ".dist"), "an unchanged file got a .dist")


if __name__ == "__main__":
    unittest.main()
