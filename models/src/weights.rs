//! What the engines' loaders share when they read weights through a candle
//! `VarBuilder`: a tensor's full name for messages, and sizes read from the
//! shape of an anchor tensor.

use candle_nn::VarBuilder;

use crate::Error;

/// The full name of `name` under `vb`'s prefix.
pub(crate) fn full_name(vb: &VarBuilder, name: &str) -> String {
    let prefix = vb.prefix();
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The shape of anchor tensor `name`, which must have `rank` non-empty
/// dimensions: how a hyper-parameter is read from the weights. The tensor
/// itself is fetched again, shape-checked, by the module that uses it.
pub(crate) fn anchor(vb: &VarBuilder, name: &str, rank: usize) -> Result<Vec<usize>, Error> {
    let t = vb.get_unchecked(name)?;
    if t.rank() != rank || t.dims().contains(&0) {
        return Err(Error::Candle(candle_core::Error::Msg(format!(
            "shape mismatch for {}: expected {rank} non-empty dimensions, got {:?}",
            full_name(vb, name),
            t.dims()
        ))));
    }
    Ok(t.dims().to_vec())
}
