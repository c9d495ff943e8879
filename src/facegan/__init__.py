"""facegan: transform faces in real photos with GANs.

Data flows one way: io (read + validate) -> faces (detect, landmarks, align) -> ops (transform the
aligned crop) -> faces (paste back) -> judges (verify) -> io (write image + report).

    import facegan
    facegan.anonymize("photo.jpg").save("out/photo.jpg")   # see facegan/api.py
"""
__version__ = "0.1.0"

# the Python API (facegan/api.py), imported on first use so `import facegan` stays cheap
_API = ("Result", "analyze", "anonymize", "blur", "detect", "load", "operations", "pixelate", "process", "process_folder",
        "swap_gender")
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'facegan' has no attribute {name!r}")
