"""Face geometry shared by every renderer that moves a face: the dense warp, the inner mouth.

Imports no backend: the classic lip-sync backend and the live portrait both build on it.
"""
