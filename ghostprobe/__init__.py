"""ghostprobe: the library every stage (data_prep, train, eval) imports.

Label schema, video decoding and frame sampling, the synthetic clip generator, prompts, models behind one interface,
and metrics. Stages never import each other; what they share lives here.
"""

__version__ = "0.1.0"
