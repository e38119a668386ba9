"""Video avatars: stabilise, process in segments, keep the mouth temporally consistent,
extract the background plate, lock the feet.

The pipeline is decompose -> stabilise -> generate -> composite -> re-shake (docs/video.md):

- `stream`, `output`: frames in and out with PyAV, one at a time; atomic outputs
- `analysis`, `motion`: one small-size pass measuring camera motion (Lucas-Kanade + RANSAC)
  and picture change
- `transforms`, `stabilize`, `reshake`: camera path, moving-average smoothing, stabilising
  warps, and putting the camera motion back
- `segments`, `runner`, `stages`: segment plans cut at quiet moments, the runner holding one
  segment at a time with cross-faded joins, and the per-segment stages
- `temporal`: flow-guided blending of the generated region with the previous output
- `matte`, `plate`, `composite`: person mattes, the background plate, new backgrounds
- `pose`, `contacts`, `footlock`: foot keypoints, contacts, local foot corrections
- `pipeline`, `commands`, `cli`: `facecast video ...`; `stable_source`, `render`: `facecast render`

Ground-truth measures and synthetic clips for tests and benchmarks live in tests/support/.
"""
