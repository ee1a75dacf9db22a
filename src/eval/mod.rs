//! Measuring billable on labelled mail (`billable eval`, docs/eval.md): the labels
//! format, the scoring the corpora's own scorers do, and the split of a mailbox into
//! the part a simulated person reviews and the part that is scored. Pure: the CLI
//! runs the scans and hands the entries here.

pub mod labels;
pub mod score;
pub mod subset;

pub use labels::{Label, Labels, LabelsError, Want};
pub use score::{Report, Seen, score};
