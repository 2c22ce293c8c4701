//! Black-box tests across the services live in `tests/`: each starts the real
//! create-service and lookup-service through their libraries on port 0, against
//! embedded SQLite or the shared bed of real servers (PostgreSQL primary + streaming
//! replica, 6-node Redis Cluster, nginx), and speaks HTTP to them.
