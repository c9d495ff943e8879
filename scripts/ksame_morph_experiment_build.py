import numpy as np, dlib, time
from facegan.faces.detect import dlib_shapes
from facegan.faces.reshape import FaceWarp
d = np.load('/work/main/cache/utk200_utkface128.npz')
crops = d['crops']
# the fixed box: dlib HOG's mean box on 300 crops
det = dlib.get_frontal_face_detector()
bs = []
for c in crops[:300]:
    r = det(c, 1)
    if len(r) == 1:
        r = r[0]; bs.append((r.left(), r.top(), r.right(), r.bottom()))
box = np.median(np.array(bs), 0); print('box', box, len(bs))
rect = dlib.rectangle(*[int(round(v)) for v in box])
sh = dlib_shapes()
t = time.time()
L = np.stack([sh.sixty_eight(c, rect) for c in crops]).astype(np.float32)
print('landmarks', time.time() - t)
keep = (d['split'] == 'train') & (d['age'] >= 16) & (d['age'] <= 75)
S = L[keep].mean(0)
t = time.time()
free = np.empty((keep.sum(), 128, 128, 3), np.uint8)
for j, i in enumerate(np.flatnonzero(keep)):
    free[j] = FaceWarp.plan((128, 128, 3), L[i], S, margin=0.15).apply(crops[i])
print('warp', time.time() - t)
np.savez('/tmp/morph/bank.npz', L=L, S=S, box=box, free=free, keep=keep, gender=d['gender'])
