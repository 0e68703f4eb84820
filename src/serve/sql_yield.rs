//! Joins that give their thread back often, so that a stopped query stops soon. A task is
//! only stopped between two polls, and a join can compute for seconds within one: a nested
//! loop join of a million build rows emits all the pairs of one probe batch before it returns,
//! and the aggregate above it keeps polling while batches come. DataFusion's own cooperative
//! budget is spent by the leaf scans only, which such a join does not touch meanwhile. This
//! physical optimizer rule (on the SQL endpoint's sessions) puts each join under a
//! `CooperativeExec`, which spends the budget for every batch the join emits: the task
//! yields every 128 batches, and a timeout, a cancel or a gone client takes effect there.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};

/// Puts every join under a [`CooperativeExec`].
#[derive(Debug)]
pub(super) struct YieldingJoins;

impl PhysicalOptimizerRule for YieldingJoins {
    fn name(&self) -> &str {
        "cohort_yielding_joins"
    }

    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let join = node.downcast_ref::<NestedLoopJoinExec>().is_some()
                || node.downcast_ref::<CrossJoinExec>().is_some()
                || node.downcast_ref::<HashJoinExec>().is_some()
                || node.downcast_ref::<SortMergeJoinExec>().is_some()
                || node.downcast_ref::<SymmetricHashJoinExec>().is_some();
            Ok(match join {
                true => Transformed::yes(Arc::new(CooperativeExec::new(node)) as _),
                false => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn joins_are_put_under_a_cooperative_node_and_answer_the_same() {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(YieldingJoins))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let sql =
            "select count(*) from range(300) a cross join range(200) b where a.value < b.value";
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        let coop = text.find("CooperativeExec").expect(&text);
        let join = text.find("NestedLoopJoinExec").expect(&text);
        assert!(
            coop < join,
            "the join sits under the cooperative node:\n{text}"
        );
        let got = df.collect().await.unwrap();
        let plain = SessionContext::new()
            .sql(sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            datafusion::arrow::util::pretty::pretty_format_batches(&got)
                .unwrap()
                .to_string(),
            datafusion::arrow::util::pretty::pretty_format_batches(&plain)
                .unwrap()
                .to_string()
        );
    }
}
