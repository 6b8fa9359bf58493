"""libvfio-user.so.0 loads into a non-C++ host with RTLD_LOCAL and works.

Exports nothing but the libvfio-user API: no C++ or Abseil symbols that could
clash with the host's.
"""
import ctypes
import os
import subprocess
import sys
import tempfile


def main():
    library = sys.argv[1]
    # Every defined, global dynamic symbol is part of the C API.
    out = subprocess.run(["nm", "-D", "--defined-only", library], check=True,
                         capture_output=True, text=True).stdout
    exported = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1].isupper():
            exported.append(fields[2].split("@")[0])
    strays = [name for name in exported
              if name != "LIBVFIO_USER_0" and not name.startswith("vfu_") and name != "dma_sg_size"]
    assert not strays, "unexpected exports: %s" % strays[:20]
    assert "vfu_run_ctx" in exported and "dma_sg_size" in exported, exported
    if "--exports-only" in sys.argv[2:]:
        print("ok (exports only)")
        return

    lib = ctypes.CDLL(os.path.abspath(library), mode=os.RTLD_LOCAL)
    lib.dma_sg_size.restype = ctypes.c_size_t
    assert lib.dma_sg_size() == 40
    lib.vfu_create_ctx.restype = ctypes.c_void_p
    lib.vfu_create_ctx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p,
                                   ctypes.c_int]
    lib.vfu_realize_ctx.argtypes = [ctypes.c_void_p]
    lib.vfu_attach_ctx.argtypes = [ctypes.c_void_p]
    lib.vfu_destroy_ctx.argtypes = [ctypes.c_void_p]
    with tempfile.TemporaryDirectory(dir="/tmp") as directory:
        path = os.path.join(directory, "s").encode()
        ctx = lib.vfu_create_ctx(0, path, 1, None, 0)
        assert ctx, "vfu_create_ctx failed"
        assert os.path.exists(path)
        assert lib.vfu_realize_ctx(ctx) == 0
        assert lib.vfu_attach_ctx(ctx) == -1  # no client, non-blocking
        lib.vfu_destroy_ctx(ctx)
        assert not os.path.exists(path)
    print("ok")


if __name__ == "__main__":
    main()
