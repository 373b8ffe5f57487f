"""One module per page; each exposes `render()` for `st.navigation`.

Not named `pages/`: Streamlit would also serve such a folder as old-style pages of its own."""
