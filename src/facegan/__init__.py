"""facegan: transform faces in real photos with GANs.

Data flows one way: io (read + validate) -> faces (detect, landmarks, align) -> ops (transform the
aligned crop) -> faces (paste back) -> judges (verify) -> io (write image + report).
"""
__version__ = "0.1.0"
