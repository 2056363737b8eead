"""Build of fastsource's compiled units. The librdkafka symbols of the consumer stay unresolved at link
time: they are bound at import to the library confluent-kafka ships (fastsource/kafka/librdkafka.py)."""
from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILE = ["-O3"]

extensions = [
    # The Kafka layer's consumer and fetch loop.
    Extension("fastsource.kafka._consumer", ["fastsource/kafka/_consumer.pyx"],
              include_dirs=["fastsource/includes"], extra_compile_args=COMPILE),
    # The formats: the Arrow builders every unit fills, the JSON pre-scan, the decoders.
    Extension("fastsource.formats._json", ["fastsource/formats/_json.pyx"],
              include_dirs=["fastsource/includes"], extra_compile_args=COMPILE),
    *(Extension(f"fastsource.formats.{name}", [f"fastsource/formats/{name}.pyx"],
                include_dirs=["fastsource/includes"], extra_compile_args=COMPILE)
      for name in ("_builders", "_wire", "_avro", "_protobuf")),
]

setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}))
