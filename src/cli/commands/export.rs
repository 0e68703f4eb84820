//! `cohort export`: a published audience's members as CSV, to standard output or to a file
//! that is replaced only when the whole export succeeded.

use anyhow::Result;

use super::super::args::ExportArgs;
use super::super::output_file;
use super::load_space;
use crate::error::Error;
use crate::serve::export::{self, ExportError, ExportOptions};

pub(in crate::cli) async fn export_cmd(a: ExportArgs) -> Result<()> {
    let opts = ExportOptions {
        format: a.format,
        id_type: a.id_type.clone(),
        hash: a.hash,
    };
    let space = load_space(&a.dir).await?;
    let csv = export::open(&space, &a.audience, &opts)
        .await
        .map_err(|e| match e {
            ExportError::Invalid(m) => Error::InvalidInput(m).into(),
            ExportError::NotFound(m) => Error::NotFound(m).into(),
            e => anyhow::Error::from(e),
        })?;
    let summary = match &a.out {
        Some(path) => {
            // Written beside the target and renamed when complete: a failed export leaves
            // no half-written file and an older export at the path as it was.
            let mut file = output_file::OutputFile::create(path)?;
            match csv.write_to(&mut file).await {
                Ok(s) => {
                    file.commit()?;
                    s
                }
                Err(ExportError::Io(e)) => return Err(file.error(e)),
                Err(e) => return Err(file.error(e)),
            }
        }
        None => match csv.write_to(&mut std::io::stdout()).await {
            Ok(s) => s,
            // The reader went away (`| head`): what it wanted was written.
            Err(ExportError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        },
    };
    eprintln!(
        "exported audience `{}` ({} format): {} members, {} rows, {} bytes{}",
        a.audience,
        a.format.as_str(),
        summary.members,
        summary.rows,
        summary.bytes,
        a.out
            .as_ref()
            .map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}
