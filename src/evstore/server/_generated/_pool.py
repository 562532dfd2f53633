"""The descriptor pool holding evstore's protocol definitions (generated: do not edit).

Not protobuf's default pool: the KurrentDB package names (event_store.client...) are also
registered there by KurrentDB client libraries, and one pool cannot hold two definitions of
a name. The well-known types the .proto files import are loaded here first.
"""

from google.protobuf import descriptor_pool
from google.protobuf import any_pb2, duration_pb2, empty_pb2, timestamp_pb2

POOL = descriptor_pool.DescriptorPool()
for _module in (any_pb2, duration_pb2, empty_pb2, timestamp_pb2):
    POOL.AddSerializedFile(_module.DESCRIPTOR.serialized_pb)
