// Telling whether an HTTP client is still there while its request waits for tokens.
// cpp-httplib (0.11) gives a handler no access to its connection's socket and notices a closed
// connection only when a write fails, which would leave a request that is queued, prefilling or
// not streaming running to the end for nobody. So the handler finds its own socket: the one
// among this process's descriptors whose peer is the request's remote address and port; then
// poll() reports when the client has hung up.
#pragma once
#include <string>

namespace strata::serve {

// The descriptor of the connected socket with this peer and local port, or -1.
int find_peer_socket(const std::string& remote_addr, int remote_port, int local_port);

// True when the peer has closed (or reset) the connection. Never blocks.
bool peer_closed(int fd);

}  // namespace strata::serve
