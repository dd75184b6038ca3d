"""The pure layer: the ``((var))`` grammar, documents within their budget, path templates and
whose secret a path is. No I/O, no AWS, no configuration: plain values in, plain values out.

- ``vars``: the grammar and the two-phase interpolation of a parsed document;
- ``documents``: YAML and JSON text to documents and back, within ``limits``;
- ``yaml_writer``: a document's YAML, as ``yaml.dump`` writes it, with its node graph built faster;
- ``yaml_tags``: the resolver's tag of a scalar without its method call, for reading and writing;
- ``limits``: the budget of one document and the flags that set it;
- ``templates``: secret path templates, candidate paths, Secrets Manager's name rules;
- ``ownership``: every reading a template can make of a path, for scope safety.
"""
