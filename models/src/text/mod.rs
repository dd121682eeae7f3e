//! Text code the engines share: the scripts a text is written in and its
//! runs of each ([`script`]), Chinese readings of numbers
//! ([`zh_numbers`]), and Mandarin pinyin by pypinyin's dictionaries and
//! rules ([`pinyin`]).

pub mod pinyin;
pub mod script;
pub mod zh_numbers;
