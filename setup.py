"""Build of fastsource's compiled core. The librdkafka symbols stay unresolved at link time: they are
bound at import to the library confluent-kafka ships (see fastsource/_librdkafka.py)."""
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "fastsource._core",
        ["fastsource/_core.pyx"],
        include_dirs=["fastsource/includes"],
        extra_compile_args=["-O3"],
    ),
    *(Extension(f"fastsource.formats.{name}", [f"fastsource/formats/{name}.pyx"], extra_compile_args=["-O3"])
      for name in ("_builders", "_wire", "_avro", "_protobuf")),
]

setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}))
