"""Tests of ncu_tables.py on the synthetic samples in samples/ (the layout ncu writes, made-up
numbers). Run: python3 -m unittest discover -s xtask/gpu -p 'test_*.py' (xtask's tests do)."""

import contextlib
import io
import unittest
from pathlib import Path

import ncu_tables as nt

SAMPLES = Path(__file__).resolve().parent / "samples"


def sample(name):
    return (SAMPLES / name).read_text()


class Parsing(unittest.TestCase):
    def test_units_and_separators(self):
        self.assertEqual(nt.to_base("10,240,000", "byte"), 10240000.0)
        self.assertEqual(nt.to_base("1.5", "Mbyte"), 1.5e6)
        self.assertEqual(nt.to_base("64", "Kbyte/block"), 64000.0)
        self.assertAlmostEqual(nt.to_base("4,564,640", "nsecond"), 4.56464e-3)
        self.assertAlmostEqual(nt.to_base("2", "msecond"), 2e-3)
        self.assertEqual(nt.to_base("97.31", "%"), 97.31)
        self.assertIsNone(nt.to_base("n/a", "byte"))

    def test_launches_skip_tool_lines_and_read_the_units_row(self):
        launches = nt.read_launches(sample("ncu_fused_sample.csv"))
        self.assertEqual([launch["id"] for launch in launches], [0, 1])
        first = launches[0]
        self.assertEqual(first["kernel"], "ch02_sdpa_f32")
        self.assertEqual(first["grid"], (2048, 8, 1))
        self.assertEqual(first["block"], (128, 1, 1))
        self.assertEqual(first["metrics"]["dram__bytes_read.sum"], 12845056.0)
        self.assertAlmostEqual(first["metrics"]["gpu__time_duration.sum"], 4.56464e-3)
        self.assertEqual(first["metrics"]["launch__shared_mem_per_block_dynamic"], 8192.0)

    def test_text_without_the_header_is_refused(self):
        with self.assertRaisesRegex(ValueError, "no ncu CSV header"):
            nt.read_launches("==PROF== Connected\n==ERROR== something failed\n")

    def test_the_details_page_is_refused(self):
        details = '"ID","Kernel Name","Metric Name","Metric Unit","Metric Value"\n"0","k","dram__bytes_read.sum","byte","1"\n'
        with self.assertRaisesRegex(ValueError, "units"):
            nt.read_launches(details)


class Fused(unittest.TestCase):
    def test_one_row_per_shape(self):
        rows = nt.fused_table(nt.read_launches(sample("ncu_fused_sample.csv")),
                              nt.read_shapes(sample("ncu_fused_sample_shapes.txt")))
        self.assertEqual(len(rows), 4)
        cells = [c.strip() for c in rows[3].strip("|").split("|")]
        self.assertEqual(cells[:5], ["1", "8", "16384", "64", "697.06"])
        # DRAM read over Q+K+V once: 104,857,600 / (4 · 8 · 16384 · 3 · 64) = 1.04.
        self.assertEqual(cells[7], "1.04")
        self.assertEqual(cells[14], "3")  # blocks per SM allowed by shared memory
        self.assertEqual(cells[16], "64.0")  # KiB of dynamic shared memory per block

    def test_shapes_that_do_not_match_the_launches_are_refused(self):
        launches = nt.read_launches(sample("ncu_fused_sample.csv"))
        with self.assertRaisesRegex(ValueError, "2 ch02_sdpa launches profiled for 1 shapes"):
            nt.fused_table(launches, [(1, 8, 2048, 64, 0)])
        with self.assertRaisesRegex(ValueError, "disagree"):
            nt.fused_table(launches, [(1, 8, 2048, 64, 0), (1, 16, 16384, 64, 0)])


class Roofline(unittest.TestCase):
    def rows(self, text):
        return nt.roofline_rows(nt.read_launches(text), nt.roofline_labels(sample("ch12_roofline_labels_sample.csv")))

    def test_sample_gives_the_committed_table(self):
        # The Rust tests of the roofline read this committed output (chapters/ch12-.../tests).
        got = self.rows(sample("ncu_roofline_sample.csv"))
        self.assertEqual(got, sample("ch12_roofline_dram_sample.csv").splitlines())

    def test_median_call_and_spread(self):
        got = self.rows(sample("ncu_roofline_sample.csv"))
        # ch02: calls of 60.0e6, 50.33e6 and 50.4e6 bytes read, 16.78e6 written each.
        self.assertEqual(got[1], "ch02 sdpa,3,1,50400000,16777216,67108864,76777216")
        # ch04: three kernels per call (SGEMM, softmax, SGEMM), two calls.
        self.assertTrue(got[2].startswith("ch04 unfused,2,3,"))

    def test_broken_markers_are_refused(self):
        text = sample("ncu_roofline_sample.csv")
        last_end = text.rstrip().splitlines()[-1]
        with self.assertRaisesRegex(ValueError, "never ends"):
            self.rows(text.replace(last_end, ""))
        # One ch02 call lost: the other two are not three calls.
        lines = text.splitlines()
        lost = next(i for i, line in enumerate(lines) if '"ch02_sdpa_f32"' in line)
        with self.assertRaisesRegex(ValueError, "do not split into 3 calls"):
            self.rows("\n".join(lines[:lost] + lines[lost + 1:]))

    def test_a_one_time_kernel_is_left_out(self):
        # A set-up kernel in the first ch02 call only: dropped, the three calls remain.
        lines = sample("ncu_roofline_sample.csv").splitlines()
        first = next(i for i, line in enumerate(lines) if '"ch02_sdpa_f32"' in line)
        extra = lines[first].replace('"ch02_sdpa_f32"', '"one_time_setup"').replace('"(4096, 16, 1)"', '"(1, 1, 1)"')
        with contextlib.redirect_stderr(io.StringIO()) as err:
            got = self.rows("\n".join(lines[:first] + [extra] + lines[first:]))
        self.assertEqual(got, sample("ch12_roofline_dram_sample.csv").splitlines())
        self.assertIn("left out 1 launches of one_time_setup", err.getvalue())

    def test_labels_must_match_the_groups(self):
        launches = nt.read_launches(sample("ncu_roofline_sample.csv"))
        with self.assertRaisesRegex(ValueError, "2 marked groups for 1 labels"):
            nt.roofline_rows(launches, ["ch02 sdpa"])

    def test_labels_with_commas(self):
        text = "label,group,flops,bytes,seconds\nch03 flash, f32,g,1e9,1e6,1e-3\n"
        self.assertEqual(nt.roofline_labels(text), ["ch03 flash, f32"])



class Kernels(unittest.TestCase):
    def test_every_launch_in_order_then_totals_per_kernel(self):
        rows = nt.kernels_table(nt.read_launches(sample("ncu_fused_sample.csv")))
        launches = [r for r in rows if r.startswith("| 0 ") or r.startswith("| 1 ")]
        self.assertEqual(len(launches), 2)
        self.assertIn("| ch02_sdpa_f32 | (2048, 8, 1) | (128, 1, 1) | 12.85 |", launches[0])
        self.assertIn("| ch02_sdpa_f32 | 2 |", "\n".join(rows))

    def test_long_names_are_cut(self):
        launch = {"id": 0, "kernel": "k" * 100, "grid": (1, 1, 1), "block": (32, 1, 1), "metrics": {}}
        row = nt.kernels_table([launch], width=10)[2]
        self.assertIn("| kkkkkkkkk… |", row)
        self.assertIn("| - | - | - | - |", row)

if __name__ == "__main__":
    unittest.main()
