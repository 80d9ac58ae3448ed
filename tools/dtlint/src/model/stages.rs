//! What the index is built from: the workspace (discover, read, parse) and
//! the outputs of the stages after it, each passed along, none stored in
//! another.

use std::ops::Deref;
use std::sync::LazyLock;

use crate::flux::FluxPaths;
use crate::render::RenderOutput;
use crate::sops_index::SopsState;
use crate::workspace::Workspace;

/// A stage's output, borrowed from whoever runs the pipeline or computed
/// on the spot for a bare workspace.
#[derive(Debug)]
pub enum Held<'a, T> {
    Borrowed(&'a T),
    Owned(T),
}

impl<T> Deref for Held<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            Self::Borrowed(t) => t,
            Self::Owned(t) => t,
        }
    }
}

/// The inputs of the index, stage by stage.
#[derive(Debug)]
pub struct Stages<'a> {
    pub ws: &'a Workspace,
    pub render: &'a RenderOutput,
    pub sops: Held<'a, SopsState>,
    pub flux_paths: Held<'a, FluxPaths>,
}

/// Nothing rendered.
static NOT_RENDERED: LazyLock<RenderOutput> = LazyLock::new(RenderOutput::default);

impl<'a> From<&'a Workspace> for Stages<'a> {
    /// A workspace checked without rendering: the SOPS files and the Flux
    /// paths are read here.
    fn from(ws: &'a Workspace) -> Self {
        Self {
            ws,
            render: &NOT_RENDERED,
            sops: Held::Owned(crate::timing::stage("(sops)", || SopsState::read(ws))),
            flux_paths: Held::Owned(crate::timing::stage("(flux paths)", || {
                crate::flux::inspect(ws)
            })),
        }
    }
}
