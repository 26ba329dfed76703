//! `@kea_runtime.tensors(inputs=[...], outputs=[...])`, read from the syntax tree as literals (the
//! code is never run). Each item is either a dict with the keys of a `spec.signature` tensor
//! (`name`, `datatype`, `shape`, `optional`) plus `description`, or a string in the docstring's
//! entry syntax:
//!
//! ```python
//! @kea_runtime.tensors(
//!     inputs=[{"name": "measurements", "datatype": "FP32", "shape": [-1, 4],
//!              "description": "sepal and petal lengths in cm"}],
//!     outputs=["species (INT64[-1]): the predicted class"],
//! )
//! ```

use super::docstring::{self, TensorType};
use super::{At, Declared, ProblemKind, SourceProblem};
use ruff_python_ast::{Expr, ExprCall, Number, UnaryOp};
use ruff_text_size::Ranged;
use tracing::instrument;

/// The decorator's inputs and outputs, each when given.
pub(super) type Lists = (Option<Vec<Declared>>, Option<Vec<Declared>>);

/// The decorator's `inputs` and `outputs` (each absent when not given).
#[instrument(level = "debug", skip_all, err(level = "debug", Display))]
pub(super) fn tensors_call(at: &At, call: &ExprCall) -> Result<Lists, SourceProblem> {
    let malformed =
        |expr: &dyn Ranged, reason: String| at.problem(ProblemKind::MalformedDecorator, expr.start(), reason);
    if let Some(first) = call.arguments.args.first() {
        return Err(malformed(
            first,
            "@kea_runtime.tensors takes keyword arguments only: inputs=[...], outputs=[...]".into(),
        ));
    }
    let (mut inputs, mut outputs) = (None, None);
    for keyword in call.arguments.keywords.iter() {
        let Some(name) = &keyword.arg else {
            return Err(malformed(
                keyword,
                "@kea_runtime.tensors: no **kwargs (the decorator is read without running the code)".into(),
            ));
        };
        let slot = match name.id.as_str() {
            "inputs" => &mut inputs,
            "outputs" => &mut outputs,
            other => {
                return Err(malformed(
                    keyword,
                    format!("@kea_runtime.tensors has no argument `{other}` (inputs, outputs)"),
                ))
            }
        };
        *slot = Some(list(at, &keyword.value)?);
    }
    if inputs.is_none() && outputs.is_none() {
        return Err(malformed(
            call,
            "@kea_runtime.tensors declares neither inputs nor outputs".into(),
        ));
    }
    Ok((inputs, outputs))
}

#[instrument(level = "trace", skip_all)]
fn list(at: &At, expr: &Expr) -> Result<Vec<Declared>, SourceProblem> {
    let items = match expr {
        Expr::List(list) => &list.elts,
        Expr::Tuple(tuple) => &tuple.elts,
        _ => {
            return Err(at.problem(
                ProblemKind::MalformedDecorator,
                expr.start(),
                "@kea_runtime.tensors: inputs and outputs are literal lists (the decorator is read without running the code)",
            ))
        }
    };
    items.iter().map(|item| tensor(at, item)).collect()
}

#[instrument(level = "trace", skip_all)]
fn tensor(at: &At, expr: &Expr) -> Result<Declared, SourceProblem> {
    let line = at.line(expr.start());
    let malformed = |reason: String| {
        at.problem_at_line(
            ProblemKind::MalformedDecorator,
            line,
            format!("@kea_runtime.tensors: {reason}"),
        )
    };
    match expr {
        Expr::StringLiteral(text) => {
            let (name, kind, description) = docstring::parse_entry(text.value.to_str()).map_err(malformed)?;
            let kind = kind.ok_or_else(|| malformed(format!("`{name}` gives no datatype and shape: `{name} (FP32[-1, 4]): description`")))?;
            Ok(Declared {
                name,
                line,
                kind,
                description: Some(description).filter(|text| !text.is_empty()),
            })
        }
        Expr::Dict(dict) => {
            let (mut name, mut datatype, mut shape, mut optional, mut description) = (None, None, None, false, None);
            for item in &dict.items {
                let Some(Expr::StringLiteral(key)) = &item.key else {
                    return Err(malformed("tensor keys are string literals".into()));
                };
                let key = key.value.to_str();
                let value = &item.value;
                match key {
                    "name" => name = Some(string(value).ok_or_else(|| malformed("`name` is a string literal".into()))?),
                    "datatype" => {
                        let text = string(value).ok_or_else(|| malformed("`datatype` is a string literal".into()))?;
                        datatype = Some(docstring::datatype(&text).ok_or_else(|| {
                            malformed(format!("`{text}` is not an Open Inference Protocol datatype (BOOL, UINT8…UINT64, INT8…INT64, FP16, FP32, FP64, BYTES)"))
                        })?);
                    }
                    "shape" => shape = Some(dims(value).ok_or_else(|| malformed("`shape` is a literal list of integers (-1 = any size)".into()))?),
                    "optional" => match value {
                        Expr::BooleanLiteral(flag) => optional = flag.value,
                        _ => return Err(malformed("`optional` is True or False".into())),
                    },
                    "description" => description = Some(string(value).ok_or_else(|| malformed("`description` is a string literal".into()))?),
                    other => {
                        return Err(malformed(format!(
                            "unknown key `{other}` (name, datatype, shape, optional, description)"
                        )))
                    }
                }
            }
            let name = name.ok_or_else(|| malformed("a tensor needs a `name`".into()))?;
            let datatype = datatype.ok_or_else(|| malformed(format!("tensor `{name}` needs a `datatype`")))?;
            let shape = shape.ok_or_else(|| malformed(format!("tensor `{name}` needs a `shape` (e.g. [-1, 4])")))?;
            if shape.len() > 8 || shape.iter().any(|dim| *dim == 0 || *dim < -1) {
                return Err(malformed(format!(
                    "tensor `{name}`: shape {shape:?}: at most 8 dimensions, each a positive size or -1"
                )));
            }
            Ok(Declared {
                name,
                line,
                kind: TensorType {
                    datatype,
                    shape,
                    optional,
                },
                description: description.filter(|text| !text.is_empty()),
            })
        }
        _ => Err(malformed(
            "each tensor is a dict literal ({\"name\": …, \"datatype\": …, \"shape\": […]}) or a string `name (DATATYPE[shape]): description`".into(),
        )),
    }
}

#[instrument(level = "trace", skip_all)]
fn string(expr: &Expr) -> Option<String> {
    match expr {
        Expr::StringLiteral(text) => Some(text.value.to_str().to_string()),
        _ => None,
    }
}

#[instrument(level = "trace", skip_all)]
fn int(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::NumberLiteral(number) => match &number.value {
            Number::Int(value) => value.as_i64(),
            _ => None,
        },
        Expr::UnaryOp(unary) if unary.op == UnaryOp::USub => match unary.operand.as_ref() {
            Expr::NumberLiteral(number) => match &number.value {
                Number::Int(value) => value.as_i64().and_then(i64::checked_neg),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

#[instrument(level = "trace", skip_all)]
fn dims(expr: &Expr) -> Option<Vec<i64>> {
    let items = match expr {
        Expr::List(list) => &list.elts,
        Expr::Tuple(tuple) => &tuple.elts,
        _ => return None,
    };
    items.iter().map(int).collect()
}
