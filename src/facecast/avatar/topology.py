"""Index sets of mediapipe's 478-point face mesh (468 face points + 10 iris points).

Contours are ordered along the curve. "Left"/"right" are as seen in the image
(image-left is the subject's right).
"""

import numpy as np

FACE_OVAL = np.array([
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
])
LIPS_OUTER = np.array([
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
])
# Inner lip contour, each from the image-left inner corner (78) to the image-right one (308).
LIPS_INNER_UPPER = np.array([78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308])
LIPS_INNER_LOWER = np.array([78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308])
MOUTH_CORNERS = (61, 291)  # outer corners, image-left then image-right
INNER_LIP_CENTER = (13, 14)  # upper, lower
CHIN = 152
NOSE_TIP = 1
NOSE_BOTTOM = 2  # subnasale
FOREHEAD = 10

# Eyes: outer and inner corners, upper and lower lids from outer to inner corner.
EYE_L_CORNERS = (33, 133)  # image-left eye
EYE_L_UPPER = np.array([33, 246, 161, 160, 159, 158, 157, 173, 133])
EYE_L_LOWER = np.array([33, 7, 163, 144, 145, 153, 154, 155, 133])
EYE_R_CORNERS = (263, 362)  # image-right eye
EYE_R_UPPER = np.array([263, 466, 388, 387, 386, 385, 384, 398, 362])
EYE_R_LOWER = np.array([263, 249, 390, 373, 374, 380, 381, 382, 362])
BROW_L = np.array([70, 63, 105, 66, 107])
BROW_R = np.array([300, 293, 334, 296, 336])
EYE_OUTER_CORNERS = (33, 263)  # the face scale: the distance between these
IRIS_L = np.arange(468, 473)
IRIS_R = np.arange(473, 478)
