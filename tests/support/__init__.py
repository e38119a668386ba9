"""Test support shared by the tests and the benchmarks; not part of the facecast package.

The tests import it as `support` (pytest puts tests/ on sys.path); benchmarks put tests/ on
sys.path first (see benchmarks/*.py).

- `server_process`: a real `facecast serve` in a child process (`ServerProcess`, `served`)
- `synthetic`: synthetic clips with known ground truth, built from real portraits
- `metrics`: quality measures with known ground truth (jitter, pan, PSNR, flicker, foot slide)
"""
