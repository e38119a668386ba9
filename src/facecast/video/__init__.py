"""Video avatars: stabilise, process in segments, keep the mouth temporally consistent,
extract the background plate, lock the feet.

The pipeline is decompose -> stabilise -> generate -> composite -> re-shake:

- `stream`, `output`: stream frames in and out with PyAV (never a whole video in memory)
- `motion`, `transforms`, `stabilize`: camera path, smoothing, stabilising warps, re-shake
- `segments`, `runner`: segment plans cut where little moves, overlap cross-fades at the joins
- `temporal`: flow-guided blending of the generated region with the previous output frame
- `matte`, `plate`, `composite`: person masks, the background plate, new backgrounds
- `pose`, `contacts`, `footlock`: ankle tracks, foot contacts, local foot corrections
- `pipeline`, `render`, `cli`: the stages put together for `facecast video ...` and `facecast render`
"""
