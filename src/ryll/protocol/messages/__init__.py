"""Message parsers (server to client, bytes -> frozen dataclasses) and builders (client to server,
values -> bytes), one module per channel. Layouts follow spice-common's spice.proto."""
