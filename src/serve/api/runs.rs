//! The run endpoints: `GET` a space's run history, `POST` to queue a run on its scheduler.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::params::{Params, bad_path, cursor, paginate};
use super::{ApiState, authorize};
use crate::serve::api_errors::ApiError;

pub(super) async fn list_runs(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(space) = path.map_err(bad_path)?;
    let p = Params::parse(raw.as_deref())?;
    let s = authorize(&st, &space, &headers)?;
    let limit = p.limit()?;
    let runs = crate::read::history::runs(&s.served.space)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot read the run history: {e}"),
            )
        })?;
    let (page, next) = paginate(&runs, p.offset()?, limit);
    let path = format!("/v1/spaces/{space}/runs");
    Ok(axum::Json(json!({"data": page, "cursor": cursor(&path, None, next)})).into_response())
}

pub(super) async fn start_run(
    State(st): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(space) = path.map_err(bad_path)?;
    authorize(&st, &space, &headers)?;
    let queued = st.trigger.as_ref().is_some_and(|t| t.trigger(&space));
    if !queued {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_scheduler",
            "this server does not run the space's scheduler",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "queued", "space": space})),
    )
        .into_response())
}
