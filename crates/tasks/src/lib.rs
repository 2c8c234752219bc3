//! Work: projects, tasks and notes, and the dependency graph that can never hold a cycle. Pure
//! (no runtime, database or HTTP): the model and its field rules ([`model`]), the graph with
//! its dynamic topological order, cycle paths, ready tasks and critical paths ([`graph`]), the
//! [`WorkStore`] port ([`ports`]) and the use cases over it ([`Work`]).

pub mod error;
pub mod graph;
pub mod model;
pub mod ports;
pub mod service;

pub use error::WorkError;
pub use graph::{
    analyse, plan_insertion, Analysis, Chain, Cycle, DependencyGraph, GraphEdge, GraphError, GraphTask, GraphView, Insertion, Region,
};
pub use model::{
    Dependency, NewProject, NewTask, Note, NoteId, Priority, Project, ProjectId, ProjectPatch, ProjectRef, Task, TaskDetail, TaskFilter,
    TaskId, TaskPatch, TaskStatus,
};
pub use ports::{DependencyAdded, DependencyRemoved, ProjectDeleted, ProjectTasks, WorkStore};
pub use service::{etag, parse_if_match, Work};
