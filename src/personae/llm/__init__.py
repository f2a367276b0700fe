"""Model backends: the provider protocol and its implementations.

`base` defines the protocol; `openai_compat` talks to OpenAI-compatible servers;
`embedded` runs llama.cpp in-process; `model_files` fetches and checks the
embedded model; `prompt` fits a conversation into the context. Import the
modules themselves: importing this package loads nothing heavy (no xllamacpp).
"""
