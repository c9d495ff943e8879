# bank faces' 68 landmarks in the 128 px crop frame, computed as the op would (on the photo, detection box)
import sys, numpy as np
from PIL import Image
sys.path.insert(0, '/tmp/ksm')
from facegan.faces import align_face
from facegan.faces.detect import detect_faces
from facegan.faces.reshape import landmarks68
from tqdm import tqdm
d = np.load('/work/main/cache/utk200_utkface128.npz')
keep = np.flatnonzero(((d["split"] == "train") & (d["age"] >= 16) & (d["age"] <= 75)) | (d["split"] == "test"))
L = np.full((len(d["name"]), 68, 2), np.nan, np.float32)
for i in tqdm(keep, mininterval=20):
    rgb = np.asarray(Image.open('/work/shared/datasets/utkface-200/' + str(d["name"][i])).convert("RGB"))
    faces = detect_faces(rgb)
    if not faces:
        continue
    h, w = rgb.shape[:2]
    face = max(faces, key=lambda f: f.width * f.height - ((f.box[0] + f.box[2]) / 2 - w / 2) ** 2)
    al = align_face(rgb, face, "utkface", 128)
    p = landmarks68(rgb, face.box)
    L[i] = (np.c_[p, np.ones(68)] @ al.matrix.T).astype(np.float32)
np.save('/tmp/ksm/lm68.npy', L)
print("done", np.isfinite(L[:, 0, 0]).sum())
