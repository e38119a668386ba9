"""Live portrait: a driver's face (webcam or video) animates a prepared avatar.

driver.py tracks the driver's head pose and expression relative to a neutral frame,
retarget.py moves the avatar's face mesh accordingly, mesh_warp.py turns the moved mesh
into a dense backward warp, renderer.py draws the frame (warp + inner mouth), and
pipeline.py / session.py / offline.py run it for a WebSocket client or a video file.
"""
